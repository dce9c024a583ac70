//! The facts GBFS documents are built from, gathered from what is in force now.

use std::sync::{Arc, Weak};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::gbfs::{PublicVehicle, SystemFacts, TariffFacts, ZoneFacts};
use crate::app::AppState;
use crate::clock::from_millis;
use crate::fleet::{Record, ScooterState};
use crate::zones::{ZoneKind, ZoneSet};

/// Whether the public may see `scooter`: a reserved one, or one a rider could rent now
/// (available, with range at or above the floor, inside the service area, service open).
/// Scooters on a trip, or out of service, are never shown.
pub fn is_public(
    scooter: &Record,
    rental_floor_km: f64,
    open: bool,
    in_area: &dyn Fn(f64, f64) -> bool,
) -> bool {
    match scooter.state {
        ScooterState::Reserved => in_area(scooter.lat, scooter.lon),
        ScooterState::Available => {
            open && scooter.range_km >= rental_floor_km && in_area(scooter.lat, scooter.lon)
        }
        _ => false,
    }
}

pub fn system(state: &AppState) -> SystemFacts {
    let config = &state.config;
    let hours = state.hours.current();
    SystemFacts {
        system_id: config.gbfs_system_id.clone(),
        name: config.gbfs_system_name.clone(),
        language: config.gbfs_language.clone(),
        feed_contact_email: config.gbfs_contact_email.clone(),
        timezone: hours.timezone.name().to_owned(),
        opening_hours: hours.opening_hours_osm(),
    }
}

pub fn tariff(state: &AppState) -> TariffFacts {
    let tariff = state.tariff.current();
    TariffFacts {
        rate_per_minute: tariff.rate_per_minute,
        currency: tariff.currency.clone(),
        language: state.config.gbfs_language.clone(),
    }
}

/// The public vehicles, built by one request at a time and shared with the requests that
/// arrive while it is built: however many fetch a large fleet's feed at once, its list is
/// held once. Nothing is kept once the last answer using a list is sent.
#[derive(Default)]
pub struct SharedVehicles {
    latest: tokio::sync::Mutex<Option<(Instant, Weak<Vec<PublicVehicle>>)>>,
}

impl SharedVehicles {
    /// The vehicles the public may see, gathered after this call began.
    pub async fn get(&self, state: &AppState, now: DateTime<Utc>) -> Arc<Vec<PublicVehicle>> {
        let asked = Instant::now();
        let mut latest = self.latest.lock().await;
        if let Some((started, list)) = &*latest {
            if let Some(list) = list.upgrade().filter(|_| *started >= asked) {
                return list;
            }
        }
        let started = Instant::now();
        let gathering = state.clone();
        // A large fleet takes a while: off the runtime's threads.
        let list = match tokio::task::spawn_blocking(move || vehicles(&gathering, now)).await {
            Ok(list) => Arc::new(list),
            Err(err) => {
                tracing::error!(error = %err, "gathering the public vehicles failed");
                Arc::new(Vec::new())
            }
        };
        *latest = Some((started, Arc::downgrade(&list)));
        list
    }
}

/// The scooters the public may see at `now`, under their public ids.
pub fn vehicles(state: &AppState, now: DateTime<Utc>) -> Vec<PublicVehicle> {
    let zones = state.zones.current();
    let open = state.hours.is_open(now);
    let floor = state.fleet.rental_floor_km;
    let in_area = |lat, lon| zones.in_service_area(lat, lon);
    // Copy the candidates out first: telemetry waits while the index is read, and the
    // service-area test is the slow part.
    let candidates = state
        .fleet
        .read()
        .select(|s| is_public(s, floor, open, &|_, _| true));
    let mut shown: Vec<PublicVehicle> = candidates
        .iter()
        .filter(|(_, s)| in_area(s.lat, s.lon))
        .map(|(scooter_id, s)| PublicVehicle {
            vehicle_id: state.public_ids.id(scooter_id, s.trips),
            lat: s.lat,
            lon: s.lon,
            is_reserved: s.state == ScooterState::Reserved,
            current_range_meters: (s.range_km * 1000.0).round(),
            battery_fraction: Some(s.battery_pct / 100.0),
            last_reported: from_millis(s.last_seen_ms),
        })
        .collect();
    drop(candidates);
    // In the order of the public ids, which says nothing of the fleet codes'.
    shown.sort_unstable_by_key(|v| v.vehicle_id);
    shown
}

/// The zones of `set`, grouped as GBFS rules need them.
pub fn zones(set: &ZoneSet) -> ZoneFacts {
    let mut facts = ZoneFacts::default();
    for zone in set.zones() {
        match zone.kind {
            ZoneKind::ServiceArea => facts.service_area.push(zone.area.clone()),
            ZoneKind::NoParking => facts.no_parking.push((
                zone.name.clone().unwrap_or_else(|| "No parking".into()),
                zone.area.clone(),
            )),
            ZoneKind::Slow { max_speed_kmh } => facts.slow.push((
                zone.name.clone().unwrap_or_else(|| "Slow zone".into()),
                zone.area.clone(),
                max_speed_kmh.round().max(1.0) as u32,
            )),
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scooter(state: ScooterState, range_km: f64) -> Record {
        Record {
            state,
            state_version: 1,
            lat: 48.85,
            lon: 2.35,
            range_km,
            battery_pct: 50.0,
            last_seen_ms: 0,
            heard_ms: 0,
            trips: 0,
            dispatch_armed: false,
        }
    }

    #[test]
    fn only_rentable_and_reserved_scooters_are_public() {
        let inside = |_: f64, _: f64| true;
        let outside = |_: f64, _: f64| false;
        assert!(is_public(
            &scooter(ScooterState::Available, 5.0),
            5.0,
            true,
            &inside
        ));
        assert!(!is_public(
            &scooter(ScooterState::Available, 4.9),
            5.0,
            true,
            &inside
        ));
        assert!(!is_public(
            &scooter(ScooterState::Available, 30.0),
            5.0,
            false,
            &inside
        ));
        assert!(!is_public(
            &scooter(ScooterState::Available, 30.0),
            5.0,
            true,
            &outside
        ));
        assert!(is_public(
            &scooter(ScooterState::Reserved, 30.0),
            5.0,
            true,
            &inside
        ));
        assert!(!is_public(
            &scooter(ScooterState::OnTrip, 30.0),
            5.0,
            true,
            &inside
        ));
        assert!(!is_public(
            &scooter(ScooterState::NonContactable, 30.0),
            5.0,
            true,
            &inside
        ));
        assert!(!is_public(
            &scooter(ScooterState::Removed, 30.0),
            5.0,
            true,
            &inside
        ));
    }
}
