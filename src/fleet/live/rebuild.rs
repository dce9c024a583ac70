//! Rebuilding a worn R-tree: insertions (of a move through the tree, or of a scooter back
//! from a trip) gather in the arrivals' tree beside the loaded one, so once they reach a
//! tenth of the fleet a fresh tree is bulk-loaded from a snapshot outside the lock, and
//! the moves made meanwhile are replayed into it. The snapshot is a copy of the tree's
//! entries (no point is computed under the lock), and each slot whose entry changes
//! meanwhile notes where the snapshot had it, so nothing but the new tree's entries is
//! kept a scooter.

use super::packed::Packed;
use super::{in_tree, tree_point, Entry, FleetTree, LiveIndex, Record};

/// The tree's entries at one moment, to bulk-load a fresh tree from outside the lock.
pub struct TreeSnapshot {
    entries: Vec<Entry>,
}

/// Room for a snapshot, made before the lock is taken: the pages of a vector this large
/// (16 MB at a million scooters) are written to once here, so that filling them under the
/// lock neither grows the vector nor waits for the system to hand them over page by page.
pub struct SnapshotRoom {
    entries: Vec<Entry>,
}

impl SnapshotRoom {
    /// Room for `entries` and a few more (the tree may take some meanwhile).
    pub fn new(entries: usize) -> Self {
        let room = entries + entries / 64 + 1024;
        let mut entries = Vec::with_capacity(room);
        entries.resize(room, Entry::new([0.0; 3], 0));
        std::hint::black_box(&mut entries).clear();
        SnapshotRoom { entries }
    }
}

/// A tree bulk-loaded from a [`TreeSnapshot`], ready to replace a worn one.
pub struct RebuiltTree {
    tree: Packed,
}

/// A tree replaced by a rebuilt one, to be dropped outside the lock.
pub struct WornTree {
    _tree: FleetTree,
}

/// A slot that changed while a tree was rebuilt, with where the snapshot had it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Changed {
    pub(super) slot: u32,
    /// Its point in the snapshot; `None` where the snapshot left it out or did not know it.
    pub(super) then: Option<[f32; 3]>,
}

impl TreeSnapshot {
    /// Bulk-loads the tree (about 0.1 s for a million scooters: not under the lock).
    pub fn build(self) -> RebuiltTree {
        RebuiltTree {
            tree: Packed::bulk_load(self.entries),
        }
    }
}

/// Once insertions since the last bulk load reach this share of the fleet, the tree is
/// rebuilt: the arrivals' own tree takes more room a scooter than a bulk-loaded one (its
/// nodes are part empty, and their vectors double as they fill), and the loaded tree keeps
/// its room for those that left it. At a million, a rebuild every 100,000 insertions costs
/// about 0.1 s on a blocking thread and 27–36 ms under the lock (`fleet_index`).
const WORN_AFTER_MOVES_PER_SCOOTER: f64 = 0.1;

/// Small fleets are cheap to search however worn their tree is.
const WORN_AFTER_AT_LEAST: usize = 10_000;

impl LiveIndex {
    /// Whether the tree has taken enough moves since its last bulk load to be rebuilt.
    pub fn is_worn(&self) -> bool {
        let threshold = (self.records.len() as f64 * WORN_AFTER_MOVES_PER_SCOOTER) as usize;
        self.moves_since_build >= threshold.max(WORN_AFTER_AT_LEAST)
    }

    /// How many entries a rebuild's snapshot takes now (see [`SnapshotRoom`]).
    pub fn tree_size(&self) -> usize {
        self.tree.size()
    }

    /// Starts a rebuild: a copy of the tree's entries as they are (each within the slack
    /// of its scooter's place; copied, not computed again, to keep the lock short) into
    /// `room`, while changes to entries from now on are noted, each with the slot's point
    /// in the snapshot, so that [`LiveIndex::finish_rebuild`] can replay them. `None` if
    /// one is under way.
    pub fn start_rebuild(&mut self, room: SnapshotRoom) -> Option<TreeSnapshot> {
        if self.changed_during_rebuild.is_some() {
            return None;
        }
        let mut entries = room.entries;
        entries.extend(self.tree.iter().copied());
        self.changed_during_rebuild = Some(Vec::new());
        Some(TreeSnapshot { entries })
    }

    /// Puts the rebuilt tree in place, after moving in it the scooters that moved, arrived,
    /// left or came back since its snapshot was taken. Returns the worn tree: free it once
    /// the lock is released (freeing a million entries takes a while).
    pub fn finish_rebuild(&mut self, rebuilt: RebuiltTree) -> WornTree {
        let mut tree = FleetTree::from(rebuilt.tree);
        let mut changed = self.changed_during_rebuild.take().unwrap_or_default();
        // Once per slot, however often it changed: from where the snapshot had it (noted at
        // its first change; the sort keeps that one first) to its exact place now.
        changed.sort_by_key(|change| change.slot);
        changed.dedup_by_key(|change| change.slot);
        let mut replayed = 0;
        for change in changed {
            let slot = change.slot;
            let Some(scooter) = self.records.get(slot as usize) else {
                continue;
            };
            let now = tree_place(scooter);
            let then = change.then;
            if then == now {
                continue;
            }
            if let Some(then) = then {
                tree.remove_exact(&Entry::new(then, slot));
            }
            if let Some(now) = now {
                tree.insert(Entry::new(now, slot));
                replayed += 1;
            }
        }
        self.moves_since_build = replayed;
        WornTree {
            _tree: std::mem::replace(&mut self.tree, tree),
        }
    }
}

/// Where a fresh tree puts a scooter: its exact place, or `None` if it leaves it out.
fn tree_place(scooter: &Record) -> Option<[f32; 3]> {
    in_tree(scooter.state).then(|| tree_point(scooter.lat, scooter.lon))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{
        ids, reading, scooter, tree_holds_the_fleet, tree_point_of, EVERYWHERE,
    };
    use super::super::{haversine_m, NearbyQuery, ScooterState};
    use super::*;

    /// A square grid of `side`² scooters around the centre, 10 m apart.
    fn grid(side: usize) -> LiveIndex {
        let entries = (0..side * side)
            .map(|i| {
                let (row, col) = ((i / side) as f64, (i % side) as f64);
                let lat = 48.8566 + (row - side as f64 / 2.0) * 0.00009;
                let lon = 2.3522 + (col - side as f64 / 2.0) * 0.000136;
                let mut token = [0; 32];
                token[..8].copy_from_slice(&(i as u64).to_le_bytes());
                (scooter(&format!("G-{i}"), lat, lon, 30.0), token)
            })
            .collect();
        LiveIndex::build(entries)
    }

    /// Every scooter nearby, as a brute-force scan finds them: the reference answer.
    fn scan(index: &LiveIndex, q: &NearbyQuery) -> Vec<String> {
        let mut all: Vec<(f64, String)> = (0..index.len() as u32)
            .zip(&index.records)
            .map(|(slot, s)| {
                (
                    haversine_m(q.lat, q.lon, s.lat, s.lon),
                    index.ids.id(slot).to_owned(),
                )
            })
            .filter(|(d, _)| *d <= q.radius_m)
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all.into_iter().take(q.limit).map(|(_, id)| id).collect()
    }

    #[test]
    fn a_worn_tree_is_rebuilt_with_the_moves_made_meanwhile() {
        let mut index = grid(150);
        let n = index.len();
        let mut at = 1_000;
        let mut step = |index: &mut LiveIndex, id: &str, dlon: f64| {
            at += 1;
            let now = index.get(id).unwrap();
            let mut r = reading(now.lon + dlon, at);
            r.lat = now.lat;
            assert!(index.apply_reading(id, &r, at).is_some());
        };
        let g = |i: usize| format!("G-{i}");
        assert!(!index.is_worn());
        // 150 m each: out of its box, mostly, so a move through the tree.
        for i in 0..n {
            if index.is_worn() {
                break;
            }
            step(&mut index, &g((i * 7919) % n), 0.002);
        }
        assert!(index.is_worn());
        // Within the slack (1.5 m): its entry stays where it was, in the snapshot too.
        let kept = tree_point_of(&index, "G-46").unwrap();
        step(&mut index, "G-46", 0.00002);
        assert_eq!(tree_point_of(&index, "G-46"), Some(kept));
        assert!(index.apply_state("G-44", ScooterState::OnTrip, 1).is_some());
        let size = index.tree_size();
        let snapshot = index.start_rebuild(SnapshotRoom::new(size)).unwrap();
        assert!(
            index.start_rebuild(SnapshotRoom::new(size)).is_none(),
            "one rebuild at a time"
        );
        // Meanwhile: moves, a scooter moved twice, one moved and back, a newcomer that moves.
        for i in 0..500 {
            step(&mut index, &g((i * 104_729) % n), -0.0003);
        }
        step(&mut index, "G-42", 0.001);
        step(&mut index, "G-42", 0.001);
        step(&mut index, "G-43", 0.001);
        step(&mut index, "G-43", -0.001);
        // Within the slack during the rebuild: nothing to replay, it keeps its point too.
        let kept_47 = tree_point_of(&index, "G-47").unwrap();
        step(&mut index, "G-47", 0.00002);
        assert!(index.insert(scooter("late", 48.8566, 2.3522, 30.0), [9; 32]));
        step(&mut index, "late", 0.00005);
        // One back from a trip that began before the snapshot, one off on a trip.
        step(&mut index, "G-44", 0.001);
        assert!(index
            .apply_state("G-44", ScooterState::Available, 2)
            .is_some());
        assert!(index.apply_state("G-45", ScooterState::OnTrip, 1).is_some());
        let rebuilt = snapshot.build();
        index.finish_rebuild(rebuilt);

        assert!(!index.is_worn());
        assert_eq!(index.tree.size(), index.len() - 1, "but G-45, on a trip");
        tree_holds_the_fleet(&index);
        // The new tree has every scooter at its exact place, but the two that stayed within
        // the slack, at the points they had.
        let g46 = index.ids.find("G-46").unwrap();
        let g47 = index.ids.find("G-47").unwrap();
        assert!(index.tree.iter().any(|e| *e == Entry::new(kept, g46)));
        assert!(index.tree.iter().any(|e| *e == Entry::new(kept_47, g47)));
        for slot in (0..index.len()).filter(|&slot| ![g46, g47].contains(&(slot as u32))) {
            let s = &index.records[slot];
            let entry = Entry::new(tree_point(s.lat, s.lon), slot as u32);
            assert_eq!(index.tree.iter().any(|e| *e == entry), in_tree(s.state));
        }
        for (lat, lon) in [(48.8566, 2.3522), (48.8570, 2.3530), (48.8560, 2.3510)] {
            let q = NearbyQuery {
                lat,
                lon,
                radius_m: 50.0,
                limit: 100,
                min_range_km: 5.0,
            };
            // As sets: scooters on the grid stand at equal distances.
            let mut found = ids(&index.nearby(&q, &EVERYWHERE));
            let mut expected = scan(&index, &q);
            assert!(found.len() > 10 && found.len() < 100, "{}", found.len());
            found.sort();
            expected.sort();
            assert_eq!(found, expected);
        }
    }
}
