//! A scooter as the live index shows it ([`Scooter`], with its id) and as it holds it
//! ([`Record`], without), and the changes the fleet publishes.

use std::sync::Arc;

use super::super::ScooterState;

/// A scooter as the live view knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Scooter {
    pub scooter_id: Arc<str>,
    pub state: ScooterState,
    /// Grows with every state change, so changes applied out of order are noticed.
    pub state_version: i64,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub battery_pct: f64,
    /// The `recorded_at` of the newest point (registration counts as one).
    pub last_seen_ms: i64,
    /// When the server last heard from it, by its own clock (not stored: after a restart
    /// it starts from `last_seen_ms`).
    pub heard_ms: i64,
}

/// A scooter as the index holds it: [`Scooter`] without its id, which is kept with all the
/// others in one arena, and with a 4-byte state version (56 bytes a scooter, where a
/// `Scooter` is 80 and its id's own allocation 32 more).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    pub state: ScooterState,
    /// The stored version as [`Record::version`] holds it.
    pub state_version: u32,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub battery_pct: f64,
    pub last_seen_ms: i64,
    pub heard_ms: i64,
    /// How many trips the scooter has ended since the server started, wrapping (it lives in
    /// what would be padding): the public feeds derive its public id from it, so that the id
    /// changes after each trip ([`crate::feeds::PublicIds`]).
    pub trips: u16,
    /// This server knows the scooter to be armed for dispatch: it may get a battery-swap
    /// task, and a report above the threshold needs no database work
    /// ([`crate::dispatch::Dispatcher`]). False until learnt, after a restart too (the
    /// cautious answer: the next such report asks the database). It fills the record's
    /// last byte of padding.
    pub dispatch_armed: bool,
}

impl Record {
    /// A stored state version as a record holds it. Versions count a scooter's state
    /// changes from 0: four billion of them are out of reach (a change a second for 136
    /// years); past that, and below 0, a version is held at the nearest end.
    pub fn version(stored: i64) -> u32 {
        u32::try_from(stored.max(0)).unwrap_or(u32::MAX)
    }
}

impl Scooter {
    /// The scooter `record` describes, named `scooter_id`.
    pub fn new(scooter_id: &str, record: &Record) -> Self {
        let Record {
            state,
            state_version,
            lat,
            lon,
            range_km,
            battery_pct,
            last_seen_ms,
            heard_ms,
            trips: _,
            dispatch_armed: _,
        } = *record;
        Scooter {
            scooter_id: scooter_id.into(),
            state,
            state_version: i64::from(state_version),
            lat,
            lon,
            range_km,
            battery_pct,
            last_seen_ms,
            heard_ms,
        }
    }

    /// Everything but the id.
    pub fn record(&self) -> Record {
        Record {
            state: self.state,
            state_version: Record::version(self.state_version),
            lat: self.lat,
            lon: self.lon,
            range_km: self.range_km,
            battery_pct: self.battery_pct,
            last_seen_ms: self.last_seen_ms,
            heard_ms: self.heard_ms,
            trips: 0,
            dispatch_armed: false,
        }
    }
}

/// What changed in the fleet, for whoever listens (dispatch, the console's live map).
#[derive(Clone, Debug, PartialEq)]
pub struct FleetChange {
    pub kind: ChangeKind,
    /// The scooter as it is after the change.
    pub scooter: Scooter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Registered,
    Moved,
    State,
}
