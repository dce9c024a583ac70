//! The in-memory index of crews: an R-tree of available crews' positions, to find the
//! nearest one quickly, and each crew's batteries to spare as last known.
//!
//! Positions are indexed as points on the unit sphere, where the straight-line (chord)
//! distance grows with the great-circle distance: the R-tree's nearest neighbour is the
//! nearest crew on the Earth, with no distortion near the poles or the antimeridian.

use std::collections::HashMap;

use rstar::primitives::GeomWithData;
use rstar::RTree;

/// A crew as the dispatcher sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct CrewState {
    pub crew_id: String,
    pub position: Option<(f64, f64)>,
    pub available: bool,
    pub batteries_aboard: i64,
    pub tasks_held: i64,
}

impl CrewState {
    /// Batteries not yet promised to a task: what more tasks the crew can take.
    pub fn spare(&self) -> i64 {
        self.batteries_aboard - self.tasks_held
    }
}

type Entry = GeomWithData<[f64; 3], String>;

/// Crews by id, and the available ones with a position in an R-tree.
#[derive(Debug, Default)]
pub struct CrewIndex {
    crews: HashMap<String, CrewState>,
    tree: RTree<Entry>,
}

/// `(lat, lon)` in degrees as a point on the unit sphere.
pub fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

impl CrewIndex {
    /// An index of `crews`, as read from the database.
    pub fn new(crews: impl IntoIterator<Item = CrewState>) -> Self {
        let crews: HashMap<String, CrewState> =
            crews.into_iter().map(|c| (c.crew_id.clone(), c)).collect();
        let entries = crews.values().filter_map(Self::entry).collect();
        Self {
            crews,
            tree: RTree::bulk_load(entries),
        }
    }

    fn entry(crew: &CrewState) -> Option<Entry> {
        match (crew.available, crew.position) {
            (true, Some((lat, lon))) => Some(GeomWithData::new(
                unit_vector(lat, lon),
                crew.crew_id.clone(),
            )),
            _ => None,
        }
    }

    pub fn get(&self, crew_id: &str) -> Option<&CrewState> {
        self.crews.get(crew_id)
    }

    /// Replaces what is known of one crew.
    pub fn upsert(&mut self, crew: CrewState) {
        if let Some(old) = self.crews.get(&crew.crew_id) {
            if let Some(entry) = Self::entry(old) {
                self.tree.remove(&entry);
            }
        }
        if let Some(entry) = Self::entry(&crew) {
            self.tree.insert(entry);
        }
        self.crews.insert(crew.crew_id.clone(), crew);
    }

    /// Adjusts the count of tasks a crew holds, as a hint until the next refresh.
    pub fn adjust_held(&mut self, crew_id: &str, by: i64) {
        if let Some(crew) = self.crews.get_mut(crew_id) {
            crew.tasks_held = (crew.tasks_held + by).max(0);
        }
    }

    /// The nearest available crew to `(lat, lon)` with batteries to spare that `eligible`
    /// accepts.
    pub fn nearest(
        &self,
        lat: f64,
        lon: f64,
        mut eligible: impl FnMut(&str) -> bool,
    ) -> Option<&CrewState> {
        self.tree
            .nearest_neighbor_iter(&unit_vector(lat, lon))
            .filter_map(|entry| self.crews.get(&entry.data))
            .find(|crew| crew.spare() > 0 && eligible(&crew.crew_id))
    }

    pub fn len(&self) -> usize {
        self.crews.len()
    }

    pub fn is_empty(&self) -> bool {
        self.crews.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crew(id: &str, lat: f64, lon: f64, batteries: i64) -> CrewState {
        CrewState {
            crew_id: id.into(),
            position: Some((lat, lon)),
            available: true,
            batteries_aboard: batteries,
            tasks_held: 0,
        }
    }

    #[test]
    fn finds_the_nearest_crew_with_batteries_to_spare() {
        // Around the Place de la Concorde (48.8656, 2.3212).
        let mut index = CrewIndex::new([
            crew("louvre", 48.8606, 2.3376, 4),
            crew("etoile", 48.8738, 2.2950, 4),
            crew("empty", 48.8660, 2.3215, 0),
        ]);
        let nearest = index.nearest(48.8656, 2.3212, |_| true).unwrap();
        assert_eq!(nearest.crew_id, "louvre", "the empty van is skipped");
        let next = index.nearest(48.8656, 2.3212, |id| id != "louvre").unwrap();
        assert_eq!(next.crew_id, "etoile");

        let mut busy = index.get("louvre").unwrap().clone();
        busy.tasks_held = 4;
        index.upsert(busy);
        assert_eq!(
            index.nearest(48.8656, 2.3212, |_| true).unwrap().crew_id,
            "etoile"
        );
    }

    #[test]
    fn unavailable_or_unplaced_crews_are_not_found_and_moves_are_followed() {
        let mut index = CrewIndex::new([crew("a", 48.85, 2.35, 2)]);
        let mut away = crew("b", 48.80, 2.30, 2);
        away.available = false;
        index.upsert(away);
        index.upsert(CrewState {
            position: None,
            ..crew("c", 0.0, 0.0, 2)
        });
        assert_eq!(index.nearest(48.80, 2.30, |_| true).unwrap().crew_id, "a");
        index.upsert(crew("b", 48.80, 2.30, 2));
        assert_eq!(index.nearest(48.80, 2.30, |_| true).unwrap().crew_id, "b");
        index.upsert(crew("a", 48.801, 2.301, 2));
        index.upsert(crew("b", 48.90, 2.40, 2));
        assert_eq!(index.nearest(48.80, 2.30, |_| true).unwrap().crew_id, "a");
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn nearest_is_great_circle_nearest_across_the_antimeridian() {
        let index = CrewIndex::new([crew("west", 0.0, -179.9, 1), crew("east", 0.0, 179.0, 1)]);
        assert_eq!(
            index.nearest(0.0, 179.95, |_| true).unwrap().crew_id,
            "west"
        );
    }
}
