//! Rebuilding a worn R-tree: moves (a removal and an insertion each) leave the tree ever
//! less balanced, so once they reach half the fleet a fresh tree is bulk-loaded from a
//! snapshot outside the lock, and the moves made meanwhile are replayed into it.

use rstar::RTree;

use super::{tree_point, Entry, LiveIndex};

/// The tree's positions at one moment, to bulk-load a fresh tree from outside the lock.
pub struct TreeSnapshot {
    /// The unit vector of each slot, as the tree had it.
    points: Vec<[f32; 3]>,
}

/// A tree bulk-loaded from a [`TreeSnapshot`], ready to replace a worn one.
pub struct RebuiltTree {
    points: Vec<[f32; 3]>,
    tree: RTree<Entry>,
}

/// A tree replaced by a rebuilt one, to be dropped outside the lock.
pub struct WornTree {
    _tree: RTree<Entry>,
}

impl TreeSnapshot {
    /// Bulk-loads the tree (about a second for a million scooters: not under the lock).
    pub fn build(self) -> RebuiltTree {
        let entries = self
            .points
            .iter()
            .enumerate()
            .map(|(slot, point)| Entry::new(*point, slot as u32))
            .collect();
        RebuiltTree {
            tree: RTree::bulk_load(entries),
            points: self.points,
        }
    }
}

/// Once moves since the last bulk load reach this share of the fleet, the tree is worth
/// rebuilding: measured, a move per scooter halves query speed at a million scooters.
const WORN_AFTER_MOVES_PER_SCOOTER: f64 = 0.5;

/// Small fleets are cheap to search however worn their tree is.
const WORN_AFTER_AT_LEAST: usize = 10_000;

impl LiveIndex {
    /// Whether the tree has taken enough moves since its last bulk load to be rebuilt.
    pub fn is_worn(&self) -> bool {
        let threshold = (self.records.len() as f64 * WORN_AFTER_MOVES_PER_SCOOTER) as usize;
        self.moves_since_build >= threshold.max(WORN_AFTER_AT_LEAST)
    }

    /// Starts a rebuild: the tree's positions now, while moves from now on are noted so
    /// that [`LiveIndex::finish_rebuild`] can replay them. `None` if one is under way.
    pub fn start_rebuild(&mut self) -> Option<TreeSnapshot> {
        if self.moved_during_rebuild.is_some() {
            return None;
        }
        let mut points = vec![[0.0; 3]; self.records.len()];
        for entry in self.tree.iter() {
            if let Some(point) = points.get_mut(entry.data as usize) {
                *point = *entry.geom();
            }
        }
        self.moved_during_rebuild = Some(Vec::new());
        Some(TreeSnapshot { points })
    }

    /// Puts the rebuilt tree in place, after moving in it the scooters that moved (or
    /// arrived) since its snapshot was taken. Returns the worn tree: free it once the lock
    /// is released (freeing a million entries takes a while).
    pub fn finish_rebuild(&mut self, rebuilt: RebuiltTree) -> WornTree {
        let RebuiltTree { points, mut tree } = rebuilt;
        let mut moved = self.moved_during_rebuild.take().unwrap_or_default();
        // Once per slot, however often it moved: from where the snapshot had it to now.
        moved.sort_unstable();
        moved.dedup();
        let mut replayed = 0;
        for slot in moved {
            let Some(scooter) = self.records.get(slot as usize) else {
                continue;
            };
            let now = tree_point(scooter.lat, scooter.lon);
            let then = points.get(slot as usize);
            if then == Some(&now) {
                continue;
            }
            // Registered after the snapshot: not in the new tree yet.
            if let Some(then) = then {
                tree.remove(&Entry::new(*then, slot));
            }
            tree.insert(Entry::new(now, slot));
            replayed += 1;
        }
        self.moves_since_build = replayed;
        WornTree {
            _tree: std::mem::replace(&mut self.tree, tree),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ids, reading, scooter, EVERYWHERE};
    use super::super::{haversine_m, NearbyQuery};
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
        let snapshot = index.start_rebuild().unwrap();
        assert!(index.start_rebuild().is_none(), "one rebuild at a time");
        // Meanwhile: moves, a scooter moved twice, one moved and back, a newcomer that moves.
        for i in 0..500 {
            step(&mut index, &g((i * 104_729) % n), -0.0003);
        }
        step(&mut index, "G-42", 0.001);
        step(&mut index, "G-42", 0.001);
        step(&mut index, "G-43", 0.001);
        step(&mut index, "G-43", -0.001);
        assert!(index.insert(scooter("late", 48.8566, 2.3522, 30.0), [9; 32]));
        step(&mut index, "late", 0.00005);
        let rebuilt = snapshot.build();
        index.finish_rebuild(rebuilt);

        assert!(!index.is_worn());
        assert_eq!(index.tree.size(), index.len());
        for slot in 0..index.len() {
            let s = &index.records[slot];
            let entry = Entry::new(tree_point(s.lat, s.lon), slot as u32);
            assert!(
                index.tree.contains(&entry),
                "{} is where it stands",
                index.ids.id(slot as u32)
            );
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
