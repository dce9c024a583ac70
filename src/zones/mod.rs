//! Zones and operating hours: where and when the service runs.
//!
//! A [`ZoneSet`] is the operator's map: service areas (where riding is offered), no-parking
//! zones and slow zones. It is plain data held in memory and answered by pure functions; an
//! R-tree of zone envelopes narrows each question to the few zones around a point before the
//! exact `geo` containment test. [`Zones`] holds the current set for the whole server and
//! swaps it atomically when an operator uploads a new version.
//!
//! [`ZoneSet`]: crate::zones::ZoneSet
//! [`Zones`]: crate::zones::Zones

mod defaults;
pub mod follow;
pub mod hours;
pub mod http;
mod parse;
mod set;
pub mod store;

use std::sync::Arc;

use tokio::sync::watch;

pub use defaults::default_feature_collection;
pub use hours::{Hours, OperatingHours};
pub use parse::{parse_zones, InvalidZones};
pub use set::{ParkingRefusal, Zone, ZoneKind, ZoneSet};

/// The zone set in force, shared by every request and worker.
///
/// Readers take a cheap `Arc` snapshot ([`Zones::current`]) and never hold a lock while
/// they compute; a writer swaps the whole set at once, so nobody ever sees half of one.
pub struct Zones {
    current: watch::Sender<Arc<ZoneSet>>,
    parking_border_tolerance_m: f64,
}

impl Zones {
    /// Holds `set`; ride ends within `parking_border_tolerance_m` metres outside a service
    /// area are accepted (see [`ZoneSet::parking_verdict`]).
    pub fn new(set: ZoneSet, parking_border_tolerance_m: f64) -> Self {
        Self {
            current: watch::Sender::new(Arc::new(set)),
            parking_border_tolerance_m,
        }
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<ZoneSet> {
        self.current.borrow().clone()
    }

    /// Puts `set` in force unless a newer version already is (two uploads finishing out of
    /// order must not bring back the older one).
    pub fn replace(&self, set: ZoneSet) {
        let set = Arc::new(set);
        self.current.send_if_modified(|current| {
            if set.version() > current.version() {
                *current = set;
                true
            } else {
                false
            }
        });
    }

    /// A receiver that wakes whenever a new set is put in force.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ZoneSet>> {
        self.current.subscribe()
    }

    /// The configured GPS tolerance at the service-area border for ending rides, in metres.
    pub fn parking_border_tolerance_m(&self) -> f64 {
        self.parking_border_tolerance_m
    }

    /// Whether `(lat, lon)` lies in a service area of the current set (border included).
    pub fn in_service_area(&self, lat: f64, lon: f64) -> bool {
        self.current().in_service_area(lat, lon)
    }

    /// Whether a ride may end at `(lat, lon)`, with the configured border tolerance.
    pub fn parking_verdict(&self, lat: f64, lon: f64) -> Result<(), ParkingRefusal> {
        self.current()
            .parking_verdict(lat, lon, self.parking_border_tolerance_m)
    }

    /// The lowest speed limit of the slow zones at `(lat, lon)`, if any.
    pub fn speed_limit_kmh(&self, lat: f64, lon: f64) -> Option<f64> {
        self.current().speed_limit_kmh(lat, lon)
    }
}
