//! Public vehicle ids: what GBFS calls a scooter instead of its fleet code.
//!
//! GBFS v3.0 asks that `vehicle_id` be a random string rotated after each trip, so nobody
//! can follow one scooter, and so one rider, from feed to feed. A scooter's public id is a
//! keyed hash (HMAC-SHA-256) of its fleet code and of how many trips it has ended since the
//! server started ([`crate::fleet::Record::trips`]), under a key drawn at random when the
//! server starts. Without the key, the ids before and after a trip are unrelated strings and
//! neither leads to the fleet code. Scooters on a trip are never published, so no id is seen
//! both before and after a rental; a reservation keeps the id.
//!
//! Nothing is kept per scooter: the trip count lives in the live index (in what was padding
//! of its records), so the ids cost no memory whatever the fleet's size. After a restart the
//! key is new and so is every id, which costs consumers nothing but one feed of unfamiliar
//! ids and is better for privacy.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Hands out public ids under one random key.
#[derive(Clone)]
pub struct PublicIds {
    /// HMAC-SHA-256 with the key already absorbed; cloned for each id.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for PublicIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicIds { .. }")
    }
}

impl Default for PublicIds {
    fn default() -> Self {
        Self::new()
    }
}

/// A public vehicle id, held inline: a feed of a million vehicles allocates nothing per id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicId {
    /// The id's bytes, then zeros (so that the order of the bytes is the order of the ids).
    bytes: [u8; PublicId::MAX],
    len: u8,
}

impl PublicId {
    /// The longest id held; [`PublicIds`] makes them 22 bytes long.
    pub const MAX: usize = 24;

    /// `id`, cut to [`PublicId::MAX`] bytes at a character boundary.
    pub fn new(id: &str) -> Self {
        let mut len = id.len().min(Self::MAX);
        while !id.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; Self::MAX];
        bytes[..len].copy_from_slice(&id.as_bytes()[..len]);
        PublicId {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        // Made from a `&str` cut at a character boundary, so always UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for PublicId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The characters of a public id after its prefix.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl PublicIds {
    /// Ids under a fresh key from the OS-seeded generator.
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let keyed = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
        PublicIds { keyed }
    }

    /// The public id of scooter `scooter_id` after it has ended `trips` trips: `v_` and 20
    /// alphanumerics (about 119 bits) taken from the keyed hash.
    pub fn id(&self, scooter_id: &str, trips: u16) -> PublicId {
        let mut mac = self.keyed.clone();
        // The code's length first, so that no two (code, count) pairs hash the same bytes.
        mac.update(&(scooter_id.len() as u64).to_be_bytes());
        mac.update(scooter_id.as_bytes());
        mac.update(&trips.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0; PublicId::MAX];
        bytes[..2].copy_from_slice(b"v_");
        for (to, byte) in bytes[2..22].iter_mut().zip(&digest[..20]) {
            *to = ALPHABET[usize::from(*byte) % ALPHABET.len()];
        }
        PublicId { bytes, len: 22 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_stable_until_the_trip_count_changes() {
        let ids = PublicIds::new();
        let first = ids.id("CS-1", 0);
        assert_eq!(ids.id("CS-1", 0), first);
        assert_ne!(ids.id("CS-1", 1), first, "a trip ended: a new id");
        assert_ne!(ids.id("CS-2", 0), first, "another scooter, another id");
        let first = first.as_str();
        assert!(first.starts_with("v_") && first.len() == 22, "{first}");
        assert!(!first.contains("CS"));
        assert!(first[2..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn another_key_gives_other_ids() {
        assert_ne!(
            PublicIds::new().id("CS-1", 0),
            PublicIds::new().id("CS-1", 0)
        );
    }

    #[test]
    fn the_code_and_the_count_are_not_confused() {
        let ids = PublicIds::new();
        // Without the length first, ("A", 0x4100) and ("AA", 0) could hash the same bytes.
        assert_ne!(ids.id("A", 0x4100), ids.id("AA", 0));
    }

    #[test]
    fn ids_are_held_inline_and_cut_at_a_character() {
        assert_eq!(PublicId::new("v_abc").as_str(), "v_abc");
        let long = "é".repeat(13);
        assert_eq!(PublicId::new(&long).as_str(), "é".repeat(12));
        assert!(PublicId::new("v_a") < PublicId::new("v_ab"));
        assert!(PublicId::new("v_ab") < PublicId::new("v_b"));
    }
}
