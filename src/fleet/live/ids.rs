//! Scooter ids by slot, and slots by id: every id in one arena of bytes, and the slots in
//! id order for lookups (a binary search) and for walking the fleet a page at a time.
//!
//! An `Arc<str>` per scooter cost 16 bytes in its record and 32 in its own allocation, and a
//! `BTreeMap` of them about 22 more. Here an id costs its bytes, 4 for where it ends and 4
//! for its place in the order: about 16 bytes a scooter for ids like `B-123456`.

use std::cmp::Ordering;

/// Scooters registered since the order was last merged are searched one by one; past this
/// many, they are merged into the order (a pass over it, so not at every registration).
const NEWCOMERS_MERGED_AT: usize = 256;

/// One fence per this many ids in order: 8 bytes per 64 ids.
const FENCE_EVERY: usize = 64;

#[derive(Default)]
pub(super) struct Ids {
    /// Every id, one after another, in slot order.
    bytes: String,
    /// Where each slot's id ends in `bytes`; it starts where the previous slot's ends.
    ends: Vec<u32>,
    /// Slots in id order (all but the newcomers).
    order: Vec<u32>,
    /// The [`prefix`] of every [`FENCE_EVERY`]th id in `order`: a lookup first finds its
    /// stretch of `order` here, in a few cached kilobytes, and reads ids only inside it.
    fences: Vec<u64>,
    /// Slots added since `order` was last merged, in the order they came.
    newcomers: Vec<u32>,
}

/// The first eight bytes of an id as a number that orders as the bytes do (ids shorter
/// than eight bytes are padded with zeros, which order first): a sort compares these and
/// reads the ids themselves only on a tie.
fn prefix(id: &str) -> u64 {
    let mut head = [0u8; 8];
    let n = id.len().min(8);
    head[..n].copy_from_slice(&id.as_bytes()[..n]);
    u64::from_be_bytes(head)
}

impl Ids {
    /// Room for `count` ids of about `bytes_each` bytes.
    pub(super) fn with_capacity(count: usize, bytes_each: usize) -> Self {
        Ids {
            bytes: String::with_capacity(count.saturating_mul(bytes_each)),
            ends: Vec::with_capacity(count),
            ..Ids::default()
        }
    }

    /// The id of `slot` ("" for a slot that has none).
    pub(super) fn id(&self, slot: u32) -> &str {
        let slot = slot as usize;
        let end = self.ends.get(slot).map_or(0, |&e| e as usize);
        let start = match slot.checked_sub(1) {
            Some(previous) => self.ends.get(previous).map_or(end, |&e| e as usize),
            None => 0,
        };
        self.bytes.get(start..end).unwrap_or("")
    }

    /// Gives the next slot `id`, without placing it in the order: for a bulk load, which
    /// ends with [`Ids::sort`].
    ///
    /// # Panics
    /// Past 4 GiB of ids in all (4,000 times a million scooters' ids).
    pub(super) fn push_unordered(&mut self, id: &str) -> u32 {
        let slot = self.ends.len() as u32;
        self.bytes.push_str(id);
        let end = u32::try_from(self.bytes.len()).expect("ids fit in 4 GiB");
        self.ends.push(end);
        slot
    }

    /// Puts every slot in id order, once all are pushed, and gives back unused room.
    pub(super) fn sort(&mut self) {
        self.bytes.shrink_to_fit();
        let mut keyed: Vec<(u64, u32)> = (0..self.ends.len() as u32)
            .map(|slot| (prefix(self.id(slot)), slot))
            .collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| self.compare(a.1, b.1)));
        self.order = keyed.into_iter().map(|(_, slot)| slot).collect();
        self.newcomers.clear();
        self.set_fences();
    }

    fn set_fences(&mut self) {
        let fences = self
            .order
            .iter()
            .step_by(FENCE_EVERY)
            .map(|&slot| prefix(self.id(slot)))
            .collect();
        self.fences = fences;
    }

    fn compare(&self, a: u32, b: u32) -> Ordering {
        self.id(a).cmp(self.id(b))
    }

    /// The slot of `id`.
    pub(super) fn find(&self, id: &str) -> Option<u32> {
        // Ids with `id`'s prefix stand after the last fence below it and before the first
        // fence above it.
        let head = prefix(id);
        let first = self.fences.partition_point(|&f| f < head).saturating_sub(1);
        let end = self.fences.partition_point(|&f| f <= head);
        let stretch = self
            .order
            .get(first * FENCE_EVERY..(end * FENCE_EVERY).min(self.order.len()))
            .unwrap_or(&[]);
        if let Ok(at) = stretch.binary_search_by(|&slot| self.id(slot).cmp(id)) {
            return stretch.get(at).copied();
        }
        self.newcomers
            .iter()
            .rev()
            .find(|&&slot| self.id(slot) == id)
            .copied()
    }

    /// Gives the next slot `id` and places it in the order; `None` when `id` is known.
    pub(super) fn insert(&mut self, id: &str) -> Option<u32> {
        if self.find(id).is_some() {
            return None;
        }
        let slot = self.push_unordered(id);
        self.newcomers.push(slot);
        if self.newcomers.len() >= NEWCOMERS_MERGED_AT {
            self.merge_newcomers();
        }
        Some(slot)
    }

    fn merge_newcomers(&mut self) {
        let mut newcomers = std::mem::take(&mut self.newcomers);
        newcomers.sort_unstable_by(|&a, &b| self.compare(a, b));
        let order = std::mem::take(&mut self.order);
        let mut merged = Vec::with_capacity(order.len() + newcomers.len());
        let (mut old, mut new) = (
            order.into_iter().peekable(),
            newcomers.into_iter().peekable(),
        );
        loop {
            let next = match (old.peek(), new.peek()) {
                (Some(&a), Some(&b)) if self.compare(a, b) == Ordering::Greater => new.next(),
                (Some(_), _) => old.next(),
                (None, _) => new.next(),
            };
            match next {
                Some(slot) => merged.push(slot),
                None => break,
            }
        }
        self.order = merged;
        self.set_fences();
    }

    /// Slots in id order, from the first id after `after` (from the first of all when
    /// `None`).
    pub(super) fn after<'s>(&'s self, after: Option<&'s str>) -> impl Iterator<Item = u32> + 's {
        let start = |slots: &[u32]| match after {
            Some(after) => slots.partition_point(|&slot| self.id(slot) <= after),
            None => 0,
        };
        let old = self.order.get(start(&self.order)..).unwrap_or(&[]);
        let mut newcomers = self.newcomers.clone();
        newcomers.sort_unstable_by(|&a, &b| self.compare(a, b));
        let from = start(&newcomers);
        newcomers.drain(..from);
        let (mut old, mut new) = (
            old.iter().copied().peekable(),
            newcomers.into_iter().peekable(),
        );
        std::iter::from_fn(move || match (old.peek(), new.peek()) {
            (Some(&a), Some(&b)) if self.compare(a, b) == Ordering::Greater => new.next(),
            (Some(_), _) => old.next(),
            (None, _) => new.next(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Ids {
        let mut ids = Ids::with_capacity(list.len(), 4);
        for id in list {
            ids.push_unordered(id);
        }
        ids.sort();
        ids
    }

    fn walk(ids: &Ids, after: Option<&str>) -> Vec<String> {
        ids.after(after).map(|s| ids.id(s).to_owned()).collect()
    }

    #[test]
    fn ids_are_found_and_walked_in_order() {
        // Longer than the eight bytes the sort compares first, equal in those.
        let mut ids = ids(&["B-10", "B-9", "", "CS-00000012", "CS-00000011", "B-1", "Σ"]);
        assert_eq!(ids.ends.len(), 7);
        assert_eq!(ids.id(1), "B-9");
        assert_eq!(ids.id(2), "");
        assert_eq!(ids.find("CS-00000011"), Some(4));
        assert_eq!(ids.find("B-1"), Some(5));
        assert_eq!(ids.find("B-"), None);
        assert_eq!(
            walk(&ids, None),
            ["", "B-1", "B-10", "B-9", "CS-00000011", "CS-00000012", "Σ"]
        );
        assert_eq!(
            walk(&ids, Some("B-10")),
            ["B-9", "CS-00000011", "CS-00000012", "Σ"]
        );

        // Newcomers: found and walked in order before and after they are merged.
        assert_eq!(ids.insert("B-5"), Some(7));
        assert_eq!(ids.insert("B-5"), None);
        assert_eq!(ids.insert("A"), Some(8));
        assert_eq!(ids.find("B-5"), Some(7));
        assert_eq!(
            walk(&ids, Some("B-10")),
            ["B-5", "B-9", "CS-00000011", "CS-00000012", "Σ"]
        );
        assert_eq!(walk(&ids, None)[..3], ["", "A", "B-1"]);
        for i in 0..NEWCOMERS_MERGED_AT {
            assert!(ids.insert(&format!("N-{i:04}")).is_some());
        }
        for i in (0..NEWCOMERS_MERGED_AT).step_by(7) {
            let id = format!("N-{i:04}");
            assert_eq!(ids.find(&id).map(|s| ids.id(s)), Some(id.as_str()));
        }
        assert!(ids.fences.len() > 2);
        assert!(ids.newcomers.len() < NEWCOMERS_MERGED_AT);
        assert_eq!(ids.find("B-5"), Some(7));
        assert_eq!(ids.find("N-0100").map(|s| ids.id(s)), Some("N-0100"));
        let all = walk(&ids, None);
        assert_eq!(all.len(), ids.ends.len());
        assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
        assert_eq!(walk(&ids, Some("N-0254")), ["N-0255", "Σ"]);
        assert!(walk(&ids, Some("Σ")).is_empty());
    }

    #[test]
    fn ids_sharing_their_first_eight_bytes_are_found_across_fences() {
        let list: Vec<String> = (0..5_000)
            .map(|i| match i % 3 {
                0 => format!("CS-00000{i:05}"),
                1 => format!("B-{i}"),
                _ => format!("x{i}"),
            })
            .collect();
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        let ids = ids(&refs);
        for (slot, id) in list.iter().enumerate() {
            assert_eq!(ids.find(id), Some(slot as u32), "{id}");
        }
        assert_eq!(ids.find("CS-00000"), None);
        assert_eq!(ids.find("CS-000009999999"), None);
        assert_eq!(ids.find("zzz"), None);
        assert_eq!(ids.find(""), None);
    }
}
