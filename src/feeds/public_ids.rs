//! Public vehicle ids: what GBFS calls a scooter instead of its fleet code.
//!
//! GBFS v3.0 asks that `vehicle_id` be a random string rotated after each trip, so nobody
//! can follow one scooter, and so one rider, from feed to feed. Each scooter gets a random
//! id the first time it is published; when the change feed shows it leaving `on_trip`, the
//! id is dropped and a fresh one is drawn the next time it is published. Scooters on a trip
//! are never published, so no id is ever seen both before and after a rental.
//!
//! The map lives in memory only: after a restart every scooter gets a new id, which costs
//! consumers nothing but one feed of unfamiliar ids and is better for privacy. If the
//! rotation worker falls behind the change feed (it lagged and missed changes), it cannot
//! know which scooters ended a trip, so it rotates every id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::fleet::{FleetChange, ScooterState};

/// Fleet code → (public id, whether the scooter is on a trip now).
#[derive(Default)]
pub struct PublicIds {
    ids: Mutex<HashMap<Arc<str>, Entry>>,
}

#[derive(Default)]
struct Entry {
    public_id: Option<String>,
    on_trip: bool,
}

/// A fresh public id: a prefix and 20 random alphanumerics, unrelated to the fleet code.
fn fresh() -> String {
    crate::ids::new_id("v")
}

impl PublicIds {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Entry>> {
        self.ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The public id of each scooter in `scooter_ids`, in order, drawing new ones as needed.
    pub fn ids_for<'a>(&self, scooter_ids: impl IntoIterator<Item = &'a Arc<str>>) -> Vec<String> {
        let mut ids = self.lock();
        scooter_ids
            .into_iter()
            .map(|scooter_id| {
                ids.entry(scooter_id.clone())
                    .or_default()
                    .public_id
                    .get_or_insert_with(fresh)
                    .clone()
            })
            .collect()
    }

    /// Takes a fleet change into account: a scooter that leaves `on_trip` gets a new id.
    /// Only scooters published or on a trip have an entry: the changes of every other one
    /// (each telemetry point is a change) leave nothing behind, so the map does not grow
    /// to the whole fleet.
    pub fn observe(&self, change: &FleetChange) {
        let scooter_id = &change.scooter.scooter_id;
        let mut ids = self.lock();
        if change.scooter.state == ScooterState::OnTrip {
            ids.entry(scooter_id.clone()).or_default().on_trip = true;
        } else if ids.get(scooter_id).is_some_and(|entry| entry.on_trip) {
            ids.remove(scooter_id);
        }
    }

    /// Forgets every id: each scooter gets a new one when next published.
    pub fn rotate_all(&self) {
        let mut ids = self.lock();
        ids.retain(|_, entry| entry.on_trip);
        for entry in ids.values_mut() {
            entry.public_id = None;
        }
    }

    /// How many scooters the map holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Follows the fleet's change feed until `shutdown`, rotating ids after rentals.
pub fn spawn_rotation(
    ids: Arc<PublicIds>,
    mut changes: broadcast::Receiver<FleetChange>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                change = changes.recv() => change,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match change {
                Ok(change) => ids.observe(&change),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "public ids fell behind the fleet; rotating them all"
                    );
                    ids.rotate_all();
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{ChangeKind, Scooter};

    fn change(id: &str, state: ScooterState) -> FleetChange {
        FleetChange {
            kind: ChangeKind::State,
            scooter: Scooter {
                scooter_id: id.into(),
                state,
                state_version: 1,
                lat: 48.85,
                lon: 2.35,
                range_km: 30.0,
                battery_pct: 80.0,
                last_seen_ms: 0,
                heard_ms: 0,
            },
        }
    }

    #[test]
    fn ids_are_stable_until_a_trip_ends() {
        let ids = PublicIds::default();
        let a: Arc<str> = "CS-1".into();
        let b: Arc<str> = "CS-2".into();
        let first = ids.ids_for([&a, &b]);
        assert_ne!(first[0], first[1]);
        assert!(!first[0].contains("CS"));
        assert_eq!(ids.ids_for([&a]), vec![first[0].clone()]);

        ids.observe(&change("CS-1", ScooterState::Reserved));
        assert_eq!(
            ids.ids_for([&a]),
            vec![first[0].clone()],
            "a reservation keeps the id"
        );
        ids.observe(&change("CS-1", ScooterState::OnTrip));
        ids.observe(&change("CS-1", ScooterState::Available));
        let after = ids.ids_for([&a, &b]);
        assert_ne!(after[0], first[0], "a rental rotates the id");
        assert_eq!(after[1], first[1], "other scooters keep theirs");

        ids.rotate_all();
        let rotated = ids.ids_for([&a, &b]);
        assert_ne!(rotated[0], after[0]);
        assert_ne!(rotated[1], after[1]);
    }

    #[test]
    fn changes_of_unpublished_scooters_leave_nothing_behind() {
        let ids = PublicIds::default();
        for i in 0..1000 {
            ids.observe(&change(&format!("CS-{i}"), ScooterState::Available));
        }
        assert_eq!(ids.len(), 0);
        ids.observe(&change("CS-1", ScooterState::OnTrip));
        assert_eq!(ids.len(), 1, "a trip is remembered until it ends");
        ids.observe(&change("CS-1", ScooterState::Available));
        assert_eq!(ids.len(), 0);
    }
}
