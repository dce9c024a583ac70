//! Placing the whole fleet in a new service area: whether each scooter stands inside is
//! tested outside the lock, a part of the fleet at a time, and the scooters that moved
//! meanwhile are tested again when the area is adopted. Only the part being tested is
//! copied out, not every position at once (16 bytes a scooter).

use std::sync::Arc;

use super::{LiveIndex, ServiceArea};

impl LiveIndex {
    /// Starts placing the fleet in a new area: moves from now on are noted for
    /// [`LiveIndex::adopt_area`]. Returns how many scooters there are to place. One
    /// placing at a time: starting another forgets the moves the first noted.
    pub fn start_placing(&mut self) -> usize {
        self.moved_during_placing = Some(Vec::new());
        self.records.len()
    }

    /// The positions of the slots from `from` on, as many as `into` has room for (at least
    /// one), in `into`: empty past the last slot.
    pub fn positions_from(&self, from: usize, into: &mut Vec<(f64, f64)>) {
        into.clear();
        let part = self.records.iter().skip(from).take(into.capacity().max(1));
        into.extend(part.map(|s| (s.lat, s.lon)));
    }

    /// Takes `area` as the service area, with `inside[slot]` computed (outside the lock)
    /// since [`LiveIndex::start_placing`]; scooters that moved or arrived since then are
    /// tested again here.
    pub fn adopt_area(&mut self, area: Arc<dyn ServiceArea>, mut inside: Vec<bool>) {
        inside.resize(self.records.len(), false);
        let mut moved = self.moved_during_placing.take().unwrap_or_default();
        moved.sort_unstable();
        moved.dedup();
        for slot in moved {
            let slot = slot as usize;
            if let (Some(scooter), Some(place)) = (self.records.get(slot), inside.get_mut(slot)) {
                *place = area.contains(scooter.lat, scooter.lon);
            }
        }
        self.inside = inside;
        self.area = area;
    }
}
