//! Crews: maintenance crews in electric vans — where they are, whether they take jobs, and
//! how many charged batteries their van carries.
//!
//! The database holds the truth; [`Crews`] keeps an in-memory [`CrewIndex`] of it so the
//! dispatcher finds the nearest crew without a query. It is rebuilt from the database at
//! start-up and refreshed by the dispatch worker, so servers sharing a database converge.
//!
//! [`Crews`]: crate::crews::Crews
//! [`CrewIndex`]: crate::crews::CrewIndex

pub mod http;
pub mod index;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use index::{CrewIndex, CrewState};

use crate::db::Db;

/// The most batteries a van may be said to carry.
pub const MAX_BATTERIES_ABOARD: i64 = 1_000;

/// The shared crew index.
#[derive(Debug, Default)]
pub struct Crews {
    index: RwLock<CrewIndex>,
    /// Counts local changes, so a refresh read before one does not undo it.
    changes: AtomicU64,
}

impl Crews {
    /// Loads every crew from the database.
    pub async fn load(db: &Db) -> Result<Self, sqlx::Error> {
        let crews = store::all(db).await?;
        Ok(Self {
            index: RwLock::new(CrewIndex::new(crews)),
            changes: AtomicU64::new(0),
        })
    }

    /// Replaces the index with the database's view, unless this server changed the index
    /// while the database was read (the next refresh will catch up).
    pub async fn refresh(&self, db: &Db) -> Result<(), sqlx::Error> {
        let seen = self.changes.load(Ordering::SeqCst);
        let crews = store::all(db).await?;
        let fresh = CrewIndex::new(crews);
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        if self.changes.load(Ordering::SeqCst) == seen {
            *index = fresh;
        }
        Ok(())
    }

    pub fn read(&self) -> RwLockReadGuard<'_, CrewIndex> {
        // A panic while holding the lock leaves a usable index: every update is one assignment.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The index, to change it.
    pub fn write(&self) -> RwLockWriteGuard<'_, CrewIndex> {
        let index = self.index.write().unwrap_or_else(|e| e.into_inner());
        self.changes.fetch_add(1, Ordering::SeqCst);
        index
    }
}

/// Why a position is refused, or `None` when it is a real WGS84 coordinate.
pub fn position_problem(lat: f64, lon: f64) -> Option<&'static str> {
    if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        Some("lat must be a number between -90 and 90.")
    } else if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        Some("lon must be a number between -180 and 180.")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_checked() {
        assert_eq!(position_problem(48.85, 2.35), None);
        assert!(position_problem(91.0, 2.35).is_some());
        assert!(position_problem(48.0, -180.5).is_some());
        assert!(position_problem(f64::NAN, 2.0).is_some());
    }
}
