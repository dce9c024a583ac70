//! Scooters authenticate with the device token issued at registration, kept only as a hash.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::auth::bearer_token;
use crate::error::Error;

/// Length of a device token, in alphanumerics (about 238 bits).
pub const DEVICE_TOKEN_LEN: usize = 40;

/// A scooter calling with its device token. The token is looked up by its SHA-256 hash in
/// the live index, so authenticating costs no database round trip. Any other token — a
/// rider's or an operator's JWT included — is 401.
#[derive(Clone, Debug)]
pub struct Device {
    pub scooter_id: Arc<str>,
}

impl FromRequestParts<AppState> for Device {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer_token(parts).ok_or(Error::Unauthenticated)?;
        let scooter_id = state
            .fleet
            .device(&token_hash(token))
            .ok_or(Error::Unauthenticated)?;
        Ok(Device { scooter_id })
    }
}

/// The SHA-256 of a device token. A plain hash is enough: the token is long and random, so
/// there is nothing to guess or look up, unlike a password.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn to_hex(hash: &[u8; 32]) -> String {
    hash.iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

pub fn from_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_through_hex() {
        let hash = token_hash("abc");
        let hex = to_hex(&hash);
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(from_hex(&hex), Some(hash));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }
}
