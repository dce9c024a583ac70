//! The bulk-loaded part of the fleet's tree: its scooters packed sixteen to a bucket in one
//! array, and an R-tree of the buckets' boxes. rstar keeps each element of a tree in a node
//! slot the size of a parent node, 48 bytes for a 16-byte entry; a bucket takes one such
//! slot for sixteen scooters, so a million take 19 MB instead of 51.
//!
//! The buckets only lose scooters and move them within their boxes, as the loaded part of
//! [`super::tree::FleetTree`] does: a box stays what the bulk load made it, larger than
//! its scooters need once some have left, never smaller.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rstar::{PointDistance, RTree, RTreeObject, SelectionFunction, AABB};

use super::tree::{Entry, Holding, TreeParams};

/// Scooters a bucket holds: as many as a node of the tree has children at most.
const BUCKET: usize = 16;

/// A bucket's box and its place in the array.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    envelope: AABB<[f32; 3]>,
    index: u32,
}

impl RTreeObject for Bucket {
    type Envelope = AABB<[f32; 3]>;

    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

impl PointDistance for Bucket {
    /// The squared distance to the box: never more than to any scooter in it, computed the
    /// same way, so a walk by boxes meets the scooters nearest first.
    fn distance_2(&self, point: &[f32; 3]) -> f32 {
        self.envelope.distance_2(point)
    }
}

impl SelectionFunction<Bucket> for Holding {
    fn should_unpack_parent(&self, envelope: &AABB<[f32; 3]>) -> bool {
        self.may_be_in(envelope)
    }

    fn should_unpack_leaf(&self, bucket: &Bucket) -> bool {
        self.may_be_in(&bucket.envelope)
    }
}

/// The scooters of a bulk load, in buckets.
#[derive(Default)]
pub(super) struct Packed {
    /// Bucket `i` holds the first `lens[i]` entries from `i * BUCKET`.
    entries: Vec<Entry>,
    lens: Vec<u8>,
    buckets: RTree<Bucket, TreeParams>,
}

impl Packed {
    /// Packs `entries` into buckets of nearby scooters, each full but the last.
    pub(super) fn bulk_load(mut entries: Vec<Entry>) -> Self {
        split(&mut entries);
        entries.shrink_to_fit();
        let lens: Vec<u8> = entries
            .chunks(BUCKET)
            .map(|chunk| chunk.len() as u8)
            .collect();
        let buckets = entries
            .chunks(BUCKET)
            .enumerate()
            .map(|(index, chunk)| Bucket {
                envelope: AABB::from_points(chunk.iter().map(Entry::geom)),
                index: index as u32,
            })
            .collect();
        Packed {
            entries,
            lens,
            buckets: RTree::bulk_load_with_params(buckets),
        }
    }

    pub(super) fn size(&self) -> usize {
        self.lens.iter().map(|&len| usize::from(len)).sum()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        (0..self.lens.len()).flat_map(|index| self.bucket(index))
    }

    fn bucket(&self, index: usize) -> &[Entry] {
        let start = index * BUCKET;
        &self.entries[start..start + usize::from(self.lens[index])]
    }

    /// Where in `entries` the first entry that `matches` is, among the buckets `boxes`.
    fn position<'a>(
        &self,
        mut boxes: impl Iterator<Item = &'a Bucket>,
        matches: impl Fn(&Entry) -> bool,
    ) -> Option<usize> {
        boxes.find_map(|bucket| {
            let index = bucket.index as usize;
            let at = self.bucket(index).iter().position(&matches)?;
            Some(index * BUCKET + at)
        })
    }

    fn find(&self, holding: Holding) -> Option<usize> {
        let boxes = self.buckets.locate_with_selection_function(holding);
        self.position(boxes, |entry| entry.data == holding.slot)
    }

    /// The point of the scooter `holding` looks for, if a bucket has it.
    pub(super) fn locate(&self, holding: Holding) -> Option<[f32; 3]> {
        self.find(holding).map(|at| *self.entries[at].geom())
    }

    /// Moves the scooter `in_place` looks for to `to` if its bucket's box holds `to`;
    /// whether it did.
    pub(super) fn move_in_place(&mut self, in_place: Holding, to: [f32; 3]) -> bool {
        let in_place = Holding {
            to: Some(to),
            ..in_place
        };
        let Some(at) = self.find(in_place) else {
            return false;
        };
        self.entries[at] = Entry::new(to, in_place.slot);
        true
    }

    /// Takes out the scooter `holding` looks for; its point, if it was there.
    pub(super) fn remove(&mut self, holding: Holding) -> Option<[f32; 3]> {
        let at = self.find(holding)?;
        let point = *self.entries[at].geom();
        self.take(at).then_some(point)
    }

    /// Takes out `entry`, at exactly its point; whether it was there.
    pub(super) fn remove_exact(&mut self, entry: &Entry) -> bool {
        let boxes = self
            .buckets
            .locate_in_envelope_intersecting(&AABB::from_point(*entry.geom()));
        let found = self.position(boxes, |other| other == entry);
        found.is_some_and(|at| self.take(at))
    }

    /// Takes the entry at `at` out of its bucket: the bucket's last takes its place.
    fn take(&mut self, at: usize) -> bool {
        let index = at / BUCKET;
        let Some(len) = self.lens.get_mut(index) else {
            return false;
        };
        *len -= 1;
        self.entries.swap(at, index * BUCKET + usize::from(*len));
        true
    }

    /// Every entry within `within_2` (a squared chord) of `centre`, nearest first, with its
    /// squared chord: the buckets by the distance to their boxes, and the scooters of those
    /// opened so far by theirs, each given once no unopened box is nearer. No box farther
    /// than `within_2` is opened: buckets emptied by moves keep their boxes, and a walk that
    /// had no bound would go through every one of them once no scooter is left near.
    pub(super) fn nearest(
        &self,
        centre: &[f32; 3],
        within_2: f64,
    ) -> impl Iterator<Item = (&Entry, f32)> {
        let centre = *centre;
        let mut boxes = self
            .buckets
            .nearest_neighbor_iter_with_distance_2(&centre)
            .take_while(move |&(_, distance_2)| f64::from(distance_2) <= within_2)
            .peekable();
        let mut opened: BinaryHeap<Near> = BinaryHeap::new();
        std::iter::from_fn(move || loop {
            let next_box = boxes.peek().map(|&(_, distance_2)| distance_2);
            if let Some(&Near { distance_2, at }) = opened.peek() {
                if next_box.is_none_or(|next| distance_2 <= next) {
                    opened.pop();
                    return Some((&self.entries[at as usize], distance_2));
                }
            }
            let (bucket, _) = boxes.next()?;
            let start = bucket.index as usize * BUCKET;
            for (i, entry) in self.bucket(bucket.index as usize).iter().enumerate() {
                let distance_2 = entry.distance_2(&centre);
                if f64::from(distance_2) <= within_2 {
                    opened.push(Near {
                        distance_2,
                        at: (start + i) as u32,
                    });
                }
            }
        })
    }
}

/// An opened bucket's entry in a walk, the nearest on top of the heap.
#[derive(Clone, Copy)]
struct Near {
    distance_2: f32,
    at: u32,
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .distance_2
            .total_cmp(&self.distance_2)
            .then(other.at.cmp(&self.at))
    }
}

/// Orders `entries` so that each run of [`BUCKET`] holds scooters near one another: split
/// in two across the widest side of their box, at a whole number of buckets, and again
/// in each half.
fn split(entries: &mut [Entry]) {
    if entries.len() <= BUCKET {
        return;
    }
    let at = entries.len().div_ceil(BUCKET) / 2 * BUCKET;
    let bounds = AABB::from_points(entries.iter().map(Entry::geom));
    let (lower, upper) = (bounds.lower(), bounds.upper());
    let axis = (0..3)
        .max_by(|&a, &b| (upper[a] - lower[a]).total_cmp(&(upper[b] - lower[b])))
        .unwrap_or(0);
    entries.select_nth_unstable_by(at, |a, b| a.geom()[axis].total_cmp(&b.geom()[axis]));
    let (near, far) = entries.split_at_mut(at);
    split(near);
    split(far);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::live::tree::tree_point;
    use rstar::Envelope;

    /// Scooter `slot` of a grid 50 wide, about 11 m between neighbours.
    fn place(slot: u32) -> (f64, f64) {
        let (row, col) = (slot / 50, slot % 50);
        (
            48.85 + f64::from(row) * 1e-4,
            2.35 + f64::from(col) * 1.5e-4,
        )
    }

    fn grid(n: u32) -> Vec<Entry> {
        (0..n)
            .map(|slot| {
                let (lat, lon) = place(slot);
                Entry::new(tree_point(lat, lon), slot)
            })
            .collect()
    }

    #[test]
    fn buckets_are_full_but_the_last_and_hold_every_scooter_once() {
        let packed = Packed::bulk_load(grid(1_001));
        assert_eq!(packed.size(), 1_001);
        assert_eq!(packed.lens.len(), 63);
        assert!(packed.lens[..62]
            .iter()
            .all(|&len| usize::from(len) == BUCKET));
        assert_eq!(packed.lens[62], 9);
        let mut slots: Vec<u32> = packed.iter().map(|entry| entry.data).collect();
        slots.sort_unstable();
        assert_eq!(slots, (0..1_001).collect::<Vec<_>>());
        // Each bucket's box holds its scooters.
        for bucket in packed.buckets.iter() {
            for entry in packed.bucket(bucket.index as usize) {
                assert!(bucket.envelope.contains_point(entry.geom()));
            }
        }
    }

    #[test]
    fn a_walk_gives_every_scooter_once_nearest_first_as_a_full_scan_orders_them() {
        let mut packed = Packed::bulk_load(grid(2_000));
        // Some leave, wherever they were.
        for slot in (0..2_000).step_by(7) {
            let entry = grid(2_000)[slot as usize];
            assert!(packed.remove_exact(&entry));
            assert!(!packed.remove_exact(&entry), "only once");
        }
        let centre = tree_point(48.853, 2.3561);
        let walked: Vec<(u32, f32)> = packed
            .nearest(&centre, f64::INFINITY)
            .map(|(entry, distance_2)| (entry.data, distance_2))
            .collect();
        let mut scanned: Vec<(u32, f32)> = packed
            .iter()
            .map(|entry| (entry.data, entry.distance_2(&centre)))
            .collect();
        scanned.sort_by(|a, b| a.1.total_cmp(&b.1));
        assert_eq!(walked.len(), 2_000 - 2_000 / 7 - 1);
        let distances = |list: &[(u32, f32)]| list.iter().map(|&(_, d)| d).collect::<Vec<_>>();
        assert_eq!(distances(&walked), distances(&scanned));
        let mut slots: Vec<u32> = walked.iter().map(|&(slot, _)| slot).collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), walked.len());
        // An empty part walks to nothing.
        assert_eq!(Packed::default().nearest(&centre, f64::INFINITY).count(), 0);
        // Within a bound: exactly the scan's scooters up to it, in the same order.
        let bound = f64::from(scanned[100].1);
        let near: Vec<f32> = packed.nearest(&centre, bound).map(|(_, d)| d).collect();
        let scanned_near: Vec<f32> = distances(&scanned)
            .into_iter()
            .filter(|&d| f64::from(d) <= bound)
            .collect();
        assert!(near.len() > 100, "{}", near.len());
        assert_eq!(near, scanned_near);
    }

    #[test]
    fn a_scooter_moves_in_place_only_within_its_bucket_box() {
        let mut packed = Packed::bulk_load(grid(500));
        let (slot, (lat, lon)) = (123, place(123));
        assert_eq!(
            packed.locate(Holding::new(slot, lat, lon)),
            Some(tree_point(lat, lon))
        );
        // To a bucket-mate's point: inside the box the bulk load gave the bucket.
        let mate = packed
            .buckets
            .iter()
            .map(|bucket| packed.bucket(bucket.index as usize))
            .find(|entries| entries.iter().any(|entry| entry.data == slot))
            .and_then(|entries| entries.iter().find(|entry| entry.data != slot))
            .map(|entry| entry.data);
        let mate = mate.expect("the scooter's bucket holds others");
        let (mate_lat, mate_lon) = place(mate);
        let to = tree_point(mate_lat, mate_lon);
        assert!(packed.move_in_place(Holding::new(slot, lat, lon), to));
        assert_eq!(
            packed.locate(Holding::new(slot, mate_lat, mate_lon)),
            Some(to)
        );
        // Ten kilometres away is outside every box of this grid: it stays where it was.
        let far = tree_point(mate_lat + 0.1, mate_lon);
        assert!(!packed.move_in_place(Holding::new(slot, mate_lat, mate_lon), far));
        assert_eq!(
            packed.locate(Holding::new(slot, mate_lat, mate_lon)),
            Some(to)
        );
        assert_eq!(
            packed.remove(Holding::new(slot, mate_lat, mate_lon)),
            Some(to),
            "the point it had"
        );
        assert_eq!(packed.locate(Holding::new(slot, mate_lat, mate_lon)), None);
        assert_eq!(packed.remove(Holding::new(slot, mate_lat, mate_lon)), None);
        assert_eq!(packed.size(), 499);
    }
}
