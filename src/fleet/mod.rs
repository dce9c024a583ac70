//! The fleet: every scooter, where it is, how far it can go, and what state it is in.
//!
//! The rules live here and in [`state`] (pure, no I/O); [`live`] holds the fleet in memory
//! (an R-tree for nearby search), [`service`] is the handle every domain holds,
//! [`ingest`] commits telemetry in groups, [`store`] is the
//! SQL and [`http`] the endpoints.
//!
//! A range below the rental floor is not a state of its own: such a scooter stays
//! `available` but is left out of nearby search, so that unlocking it answers the contract's
//! `battery_too_low` rather than `scooter_unavailable`.
//!
//! [`state`]: crate::fleet::state
//! [`live`]: crate::fleet::live
//! [`service`]: crate::fleet::service
//! [`ingest`]: crate::fleet::ingest
//! [`store`]: crate::fleet::store
//! [`http`]: crate::fleet::http

pub mod accept;
pub mod commit;
pub mod device;
pub mod http;
pub mod import;
pub mod ingest;
pub mod live;
pub mod mqtt;
pub mod ops;
mod scan;
pub mod service;
pub mod state;
pub mod store;
pub mod workers;

use chrono::{DateTime, Utc};

pub use device::Device;
pub use live::{ChangeKind, FleetChange, Record, Scooter};
pub use service::{ChangeError, Fleet};
pub use state::{transition, Event, Reason, ScooterState};

/// Mean Earth radius in metres (IUGG), the sphere `distance_m` is measured on.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The longest fleet code accepted.
pub const MAX_SCOOTER_ID_LEN: usize = 64;

/// How far ahead of the server's clock a device may date a point.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

/// The most points one telemetry request may carry.
pub const MAX_POINTS_PER_BATCH: usize = 1000;

/// The furthest a rider may search, in metres.
pub const MAX_NEARBY_RADIUS_M: f64 = 5000.0;

/// The most scooters one nearby answer may list.
pub const MAX_NEARBY_LIMIT: usize = 100;

/// The largest battery range believed, in kilometres.
pub const MAX_RANGE_KM: f64 = 1000.0;

/// The fastest speed believed, in km/h.
pub const MAX_SPEED_KMH: f64 = 200.0;

/// One reading of a scooter: where, how much range, when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub battery_pct: f64,
    pub speed_kmh: Option<f64>,
    pub recorded_at_ms: i64,
}

/// Great-circle distance in metres between two WGS84 positions (haversine).
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// Whether `id` is a fleet code such as `CS-0042`: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn is_valid_scooter_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SCOOTER_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What is wrong with a position, in a sentence, or `None` when it is a real place.
pub fn position_problem(lat: f64, lon: f64) -> Option<String> {
    if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        return Some(format!(
            "lat must be a number between -90 and 90, not {lat}."
        ));
    }
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return Some(format!(
            "lon must be a number between -180 and 180, not {lon}."
        ));
    }
    None
}

/// What is wrong with a battery reading, in a sentence, or `None` when it is plausible.
pub fn battery_problem(range_km: f64, battery_pct: f64) -> Option<String> {
    if !range_km.is_finite() || !(0.0..=MAX_RANGE_KM).contains(&range_km) {
        return Some(format!(
            "range_km must be a number between 0 and {MAX_RANGE_KM}, not {range_km}."
        ));
    }
    if !battery_pct.is_finite() || !(0.0..=100.0).contains(&battery_pct) {
        return Some(format!(
            "battery_pct must be a number between 0 and 100, not {battery_pct}."
        ));
    }
    None
}

/// What is wrong with a telemetry reading received at `now`, or `None` when it is valid.
pub fn reading_problem(reading: &Reading, now: DateTime<Utc>) -> Option<String> {
    if let Some(problem) = position_problem(reading.lat, reading.lon) {
        return Some(problem);
    }
    if let Some(problem) = battery_problem(reading.range_km, reading.battery_pct) {
        return Some(problem);
    }
    if let Some(speed) = reading.speed_kmh {
        if !speed.is_finite() || !(0.0..=MAX_SPEED_KMH).contains(&speed) {
            return Some(format!(
                "speed_kmh must be a number between 0 and {MAX_SPEED_KMH}, not {speed}."
            ));
        }
    }
    if reading.recorded_at_ms > now.timestamp_millis() + MAX_FUTURE_SKEW_MS {
        return Some("recorded_at is more than 5 minutes in the future.".into());
    }
    if reading.recorded_at_ms < 0 {
        return Some("recorded_at is before 1970.".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_matches_known_distances() {
        // Notre-Dame to the Eiffel Tower: about 4.1 km.
        let d = haversine_m(48.8530, 2.3499, 48.8584, 2.2945);
        assert!((d - 4_100.0).abs() < 50.0, "{d}");
        assert_eq!(haversine_m(48.85, 2.35, 48.85, 2.35), 0.0);
        // A quarter of a meridian.
        let quarter = haversine_m(0.0, 0.0, 90.0, 0.0);
        assert!((quarter - std::f64::consts::FRAC_PI_2 * EARTH_RADIUS_M).abs() < 1e-6);
        // Across the antimeridian is short, not half the world.
        assert!(haversine_m(0.0, 179.999, 0.0, -179.999) < 300.0);
    }

    #[test]
    fn fleet_codes() {
        assert!(is_valid_scooter_id("CS-0042"));
        assert!(is_valid_scooter_id("a_b-9"));
        assert!(!is_valid_scooter_id(""));
        assert!(!is_valid_scooter_id("CS 0042"));
        assert!(!is_valid_scooter_id("CS/0042"));
        assert!(!is_valid_scooter_id("é"));
        assert!(!is_valid_scooter_id(&"x".repeat(MAX_SCOOTER_ID_LEN + 1)));
        assert!(is_valid_scooter_id(&"x".repeat(MAX_SCOOTER_ID_LEN)));
    }

    fn reading() -> Reading {
        Reading {
            lat: 48.85,
            lon: 2.35,
            range_km: 20.0,
            battery_pct: 80.0,
            speed_kmh: Some(12.0),
            recorded_at_ms: 1_000_000,
        }
    }

    #[test]
    fn readings_are_checked_field_by_field() {
        let now = DateTime::from_timestamp_millis(1_000_000).unwrap();
        assert_eq!(reading_problem(&reading(), now), None);
        let bad = [
            Reading {
                lat: f64::NAN,
                ..reading()
            },
            Reading {
                lat: 90.5,
                ..reading()
            },
            Reading {
                lon: -180.5,
                ..reading()
            },
            Reading {
                lon: f64::INFINITY,
                ..reading()
            },
            Reading {
                range_km: -1.0,
                ..reading()
            },
            Reading {
                battery_pct: 100.5,
                ..reading()
            },
            Reading {
                speed_kmh: Some(-3.0),
                ..reading()
            },
            Reading {
                recorded_at_ms: 1_000_000 + MAX_FUTURE_SKEW_MS + 1,
                ..reading()
            },
        ];
        for reading in bad {
            assert!(reading_problem(&reading, now).is_some(), "{reading:?}");
        }
        let edge = Reading {
            recorded_at_ms: 1_000_000 + MAX_FUTURE_SKEW_MS,
            range_km: 0.0,
            battery_pct: 100.0,
            speed_kmh: None,
            ..reading()
        };
        assert_eq!(reading_problem(&edge, now), None);
    }
}
