//! Background work for rides: cancelling rides whose scooter never confirmed its unlock,
//! expiring reservations, putting the fleet to sleep at closing time and waking it at
//! opening, and watching riding scooters for the service area's border and slow zones.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::commands::{self, CommandKind};
use super::{holds, reservations, service, store};
use crate::app::AppState;
use crate::fleet::{ChangeKind, Event, FleetChange, Reason, ScooterState};

pub fn spawn(state: &AppState, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(sweep(state.clone(), shutdown.clone())),
        tokio::spawn(watch_rides(state.clone(), shutdown)),
    ]
}

async fn sweep(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.config.rides_sweep_interval_ms.max(10));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(period) => {}
        }
        if let Err(err) = cancel_unconfirmed_unlocks(&state).await {
            tracing::error!(error = ?err, "checking unlock confirmations");
        }
        if let Err(err) = expire_reservations(&state).await {
            tracing::error!(error = ?err, "expiring reservations");
        }
        follow_opening_hours(&state).await;
    }
}

async fn cancel_unconfirmed_unlocks(state: &AppState) -> Result<(), crate::error::Error> {
    let timeout_ms = state.config.unlock_ack_timeout_secs as i64 * 1000;
    let cutoff = state.clock.now().timestamp_millis() - timeout_ms;
    for (command_id, ride_id) in commands::overdue_unlocks(&state.db, cutoff).await? {
        service::cancel_unconfirmed(state, &command_id, &ride_id).await?;
    }
    Ok(())
}

async fn expire_reservations(state: &AppState) -> Result<(), crate::error::Error> {
    let now_ms = state.clock.now().timestamp_millis();
    for reservation in reservations::due(&state.db, now_ms).await? {
        holds::release(state, &reservation, "expired").await?;
    }
    Ok(())
}

/// Outside opening hours every idle scooter is `non_operational/off_hours`; inside them,
/// those scooters are `available` again. Checked on every sweep, so a scooter that ends a
/// ride after closing time is put to sleep too.
async fn follow_opening_hours(state: &AppState) {
    let now = state.clock.now();
    let (from, event) = if state.hours.is_open(now) {
        (
            ScooterState::NonOperational(Reason::OffHours),
            Event::OnHours,
        )
    } else {
        (ScooterState::Available, Event::OffHours)
    };
    let mut changed = 0;
    for slots in state.fleet.sweep_slices() {
        // A million scooters at closing time take a while: a stopping server does not wait.
        if *state.stopping.borrow() {
            return;
        }
        let ids = state.fleet.read().ids_in_state(from, |_| true, slots);
        match state
            .fleet
            .change_states(&state.db, &ids, from, event, now)
            .await
        {
            Ok(count) => changed += count,
            Err(err) => {
                tracing::warn!(error = ?err, "opening-hours changes failed; the next sweep tries again");
                return;
            }
        }
    }
    if changed > 0 {
        tracing::info!(changed, event = event.as_str(), "opening-hours sweep done");
    }
}

/// What the watcher remembers of a riding scooter.
struct Riding {
    ride_id: String,
    outside: bool,
    speed_limit_kmh: Option<f64>,
}

/// Follows riding scooters through the change feed: leaving or re-entering the service
/// area is recorded on the ride (the rider's view shows a warning), and entering or leaving
/// a slow zone queues a `speed_limit` command for the scooter.
async fn watch_rides(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut changes = state.fleet.subscribe();
    let mut riding: HashMap<Arc<str>, Riding> = HashMap::new();
    loop {
        let change = tokio::select! {
            _ = shutdown.changed() => return,
            change = changes.recv() => change,
        };
        match change {
            Ok(change) => {
                if let Err(err) = follow(&state, &mut riding, &change).await {
                    tracing::error!(error = ?err, scooter = %change.scooter.scooter_id, "following a ride");
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "ride watcher fell behind the fleet's changes");
                riding.clear();
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn follow(
    state: &AppState,
    riding: &mut HashMap<Arc<str>, Riding>,
    change: &FleetChange,
) -> Result<(), crate::error::Error> {
    let scooter = &change.scooter;
    if scooter.state != ScooterState::OnTrip {
        riding.remove(&scooter.scooter_id);
        return Ok(());
    }
    if change.kind != ChangeKind::Moved {
        return Ok(());
    }
    if !riding.contains_key(&scooter.scooter_id) {
        let Some(ride) = store::active_ride_on_scooter(&state.db, &scooter.scooter_id).await?
        else {
            return Ok(());
        };
        riding.insert(
            scooter.scooter_id.clone(),
            Riding {
                ride_id: ride.id,
                outside: ride.outside_zone_since_ms.is_some(),
                speed_limit_kmh: ride.speed_limit_kmh,
            },
        );
    }
    let Some(ride) = riding.get_mut(&scooter.scooter_id) else {
        return Ok(());
    };
    let now_ms = state.clock.now().timestamp_millis();
    let zones = state.zones.current();
    let outside = !zones.in_service_area(scooter.lat, scooter.lon);
    if outside != ride.outside {
        let kind = if outside {
            "left_service_area"
        } else {
            "entered_service_area"
        };
        store::insert_ride_event(
            &state.db,
            &ride.ride_id,
            kind,
            scooter.lat,
            scooter.lon,
            now_ms,
        )
        .await?;
        store::set_outside_zone(&state.db, &ride.ride_id, outside.then_some(now_ms)).await?;
        ride.outside = outside;
    }
    let limit = zones.speed_limit_kmh(scooter.lat, scooter.lon);
    if limit != ride.speed_limit_kmh {
        commands::queue(
            &state.db,
            &scooter.scooter_id,
            Some(&ride.ride_id),
            CommandKind::SpeedLimit,
            &json!({ "max_speed_kmh": limit }),
            now_ms,
        )
        .await?;
        let kind = if limit.is_some() {
            "speed_limited"
        } else {
            "speed_limit_lifted"
        };
        store::insert_ride_event(
            &state.db,
            &ride.ride_id,
            kind,
            scooter.lat,
            scooter.lon,
            now_ms,
        )
        .await?;
        store::set_speed_limit(&state.db, &ride.ride_id, limit).await?;
        ride.speed_limit_kmh = limit;
    }
    Ok(())
}
