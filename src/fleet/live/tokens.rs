//! Device tokens by their hash: each slot's token hash, and a table of slots keyed by those
//! hashes, so that a lookup compares the hash kept but the table holds 4 bytes per scooter.
//!
//! A map from the 32-byte hash to the slot held 36 bytes a bucket, and its buckets are a
//! power of two: about 78 bytes a scooter at a million. Here the table is 5 bytes a bucket
//! (the slot and hashbrown's control byte) plus the first [`KEPT`] bytes of the hash.
//!
//! Half the SHA-256 is kept, not all of it: telling tokens apart needs no more. Device
//! tokens are random, so two of a million sharing 128 bits happens with odds of about
//! 2⁻⁸⁹; and forging a token that matches one means finding a SHA-256 input whose first
//! 128 bits are given, about 2¹⁰⁸ tries against a million scooters.

use hashbrown::HashTable;

/// How many leading bytes of each token hash are kept and compared.
const KEPT: usize = 16;

/// The part of a token hash the table keeps.
type Kept = [u8; KEPT];

fn kept(hash: &[u8; 32]) -> Kept {
    let mut head = [0; KEPT];
    head.copy_from_slice(&hash[..KEPT]);
    head
}

#[derive(Default)]
pub(super) struct TokenTable {
    /// The kept part of each slot's token hash.
    hashes: Vec<Kept>,
    /// Slots, placed by their hash's first eight bytes.
    slots: HashTable<u32>,
}

/// A SHA-256 is uniform already: its first eight bytes serve as the table's hash.
fn key(hash: &Kept) -> u64 {
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
        let hash = kept(&hash);
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
        let hash = kept(hash);
        self.slots
            .find(key(&hash), |&s| self.hashes.get(s as usize) == Some(&hash))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_the_kept_part_of_its_hash() {
        let mut table = TokenTable::with_capacity(2);
        let a = [1; 32];
        // The same first eight bytes (the same place in the table), another hash.
        let mut b = a;
        b[KEPT - 1] = 2;
        table.push(a);
        table.push(b);
        assert_eq!((table.get(&a), table.get(&b)), (Some(0), Some(1)));
        let mut c = a;
        c[KEPT - 3] = 9;
        assert_eq!(table.get(&c), None);
        // Past the kept bytes, hashes are not told apart.
        c = a;
        c[KEPT] = 9;
        assert_eq!(table.get(&c), Some(0));
        // Many more, past the table's first capacity.
        for i in 2..10_000u32 {
            let mut h = [0; 32];
            h[..4].copy_from_slice(&i.to_le_bytes());
            h[KEPT - 2] = 7;
            table.push(h);
        }
        let mut h = [0; 32];
        h[..4].copy_from_slice(&4_321u32.to_le_bytes());
        h[KEPT - 2] = 7;
        assert_eq!(table.get(&h), Some(4_321));
        assert_eq!(table.get(&a), Some(0));
        // A hash given again belongs to its newest slot.
        table.push(a);
        assert_eq!(table.get(&a), Some(10_000));
    }
}
