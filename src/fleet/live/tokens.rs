//! Device tokens by their hash: each slot's token hash, and a table of slots keyed by those
//! hashes, so that a lookup compares the whole 32 bytes but the table holds 4 per scooter.
//!
//! A map from the 32-byte hash to the slot held 36 bytes a bucket, and its buckets are a
//! power of two: about 78 bytes a scooter at a million. Here the table is 5 bytes a bucket
//! (the slot and hashbrown's control byte) plus the 32 bytes of the hash itself.

use hashbrown::HashTable;

#[derive(Default)]
pub(super) struct TokenTable {
    /// The token hash of each slot.
    hashes: Vec<[u8; 32]>,
    /// Slots, placed by their hash's first eight bytes.
    slots: HashTable<u32>,
}

/// A SHA-256 is uniform already: its first eight bytes serve as the table's hash.
fn key(hash: &[u8; 32]) -> u64 {
    let [a, b, c, d, e, f, g, h, ..] = *hash;
    u64::from_le_bytes([a, b, c, d, e, f, g, h])
}

impl TokenTable {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        TokenTable {
            hashes: Vec::with_capacity(capacity),
            slots: HashTable::with_capacity(capacity),
        }
    }

    /// Gives the next slot (the number of hashes pushed so far) the token `hash`. A hash
    /// already known moves to the new slot.
    pub(super) fn push(&mut self, hash: [u8; 32]) {
        let slot = self.hashes.len() as u32;
        let hashes = &self.hashes;
        match self
            .slots
            .find_mut(key(&hash), |&s| hashes.get(s as usize) == Some(&hash))
        {
            Some(known) => *known = slot,
            None => {
                self.slots
                    .insert_unique(key(&hash), slot, |&s| hashes.get(s as usize).map_or(0, key));
            }
        }
        self.hashes.push(hash);
    }

    /// The slot whose token hashes to `hash`.
    pub(super) fn get(&self, hash: &[u8; 32]) -> Option<u32> {
        self.slots
            .find(key(hash), |&s| self.hashes.get(s as usize) == Some(hash))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_whole_hash() {
        let mut table = TokenTable::with_capacity(2);
        let a = [1; 32];
        // The same first eight bytes (the same place in the table), another hash.
        let mut b = a;
        b[31] = 2;
        table.push(a);
        table.push(b);
        assert_eq!((table.get(&a), table.get(&b)), (Some(0), Some(1)));
        let mut c = a;
        c[20] = 9;
        assert_eq!(table.get(&c), None);
        // Many more, past the table's first capacity.
        for i in 2..10_000u32 {
            let mut h = [0; 32];
            h[..4].copy_from_slice(&i.to_le_bytes());
            h[30] = 7;
            table.push(h);
        }
        let mut h = [0; 32];
        h[..4].copy_from_slice(&4_321u32.to_le_bytes());
        h[30] = 7;
        assert_eq!(table.get(&h), Some(4_321));
        assert_eq!(table.get(&a), Some(0));
        // A hash given again belongs to its newest slot.
        table.push(a);
        assert_eq!(table.get(&a), Some(10_000));
    }
}
