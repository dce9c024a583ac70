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
    pub fn id(&self, scooter_id: &str, trips: u16) -> String {
        let mut mac = self.keyed.clone();
        // The code's length first, so that no two (code, count) pairs hash the same bytes.
        mac.update(&(scooter_id.len() as u64).to_be_bytes());
        mac.update(scooter_id.as_bytes());
        mac.update(&trips.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let mut id = String::with_capacity(22);
        id.push_str("v_");
        id.extend(
            digest[..20]
                .iter()
                .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()])),
        );
        id
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
}
