//! The fleet's background work: the telemetry writer, MQTT intake, the silence watch that marks quiet
//! scooters `non_contactable`, the deletion of telemetry past its retention, and the upkeep
//! of the live index (its place in the zones, its tree rebuilt when worn).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::live::ServiceArea;
use super::{ingest, store, Event, ScooterState};
use crate::app::AppState;

/// Starts every fleet worker; each stops when `shutdown` turns true.
pub fn spawn(state: &AppState, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut workers = Vec::new();
    for inbox in state.fleet.take_writer_inboxes() {
        workers.push(tokio::spawn(ingest::run_writer(
            state.clone(),
            inbox,
            shutdown.clone(),
        )));
    }
    workers.extend(super::mqtt::spawn(state, shutdown.clone()));
    workers.push(tokio::spawn(watch_silence(state.clone(), shutdown.clone())));
    workers.push(tokio::spawn(follow_other_servers(
        state.clone(),
        shutdown.clone(),
    )));
    workers.push(tokio::spawn(place_in_zones(
        state.clone(),
        shutdown.clone(),
    )));
    workers.push(tokio::spawn(refit_tree(state.clone(), shutdown.clone())));
    workers.push(tokio::spawn(expire_telemetry(state.clone(), shutdown)));
    workers
}

/// Waits `period` or until shutdown; `false` on shutdown.
async fn tick(period: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(period) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    };
    !stopped && !*shutdown.borrow()
}

/// Every this many sweeps, scooters registered outside this server are taken in.
const SWEEPS_PER_ADOPTION: u64 = 10;

async fn watch_silence(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.config.fleet_sweep_interval_ms.max(10));
    let timeout_ms = (state.config.silence_timeout_secs as i64).saturating_mul(1000);
    let mut sweeps = 0u64;
    while tick(period, &mut shutdown).await {
        sweeps += 1;
        if sweeps % SWEEPS_PER_ADOPTION == 0 {
            match state.fleet.adopt_new(&state.db).await {
                Ok(0) => {}
                Ok(adopted) => tracing::info!(adopted, "scooters registered elsewhere taken in"),
                Err(err) => tracing::warn!(error = %err, "could not look for new scooters"),
            }
        }
        mark_silent(&state, timeout_ms).await;
    }
}

/// Marks every available scooter not heard from within `timeout_ms` as `non_contactable`.
pub async fn mark_silent(state: &AppState, timeout_ms: i64) {
    let now = state.clock.now();
    let cutoff = now.timestamp_millis().saturating_sub(timeout_ms);
    let mut changed = 0;
    for slots in state.fleet.sweep_slices() {
        if *state.stopping.borrow() {
            return;
        }
        let silent = state.fleet.read().silent_since(cutoff, slots);
        // Many at a time (a whole district's network down): 256 to a transaction; one that
        // moved on meanwhile (rented, say) is checked again on its own.
        match state
            .fleet
            .change_states(
                &state.db,
                &silent,
                ScooterState::Available,
                Event::CommsLost,
                now,
            )
            .await
        {
            Ok(count) => changed += count,
            Err(err) => {
                tracing::warn!(error = %err, "could not mark silent scooters; the next sweep tries again");
                break;
            }
        }
    }
    if changed > 0 {
        tracing::info!(changed, "scooters went silent");
    }
}

/// Keeps the live index in step with state changes made by other servers sharing the
/// database (a ride started through another server, an operator's event there).
async fn follow_other_servers(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.config.fleet_follow_interval_ms.max(10));
    let mut cursor = match store::last_event_id(&state.db).await {
        Ok(id) => id,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the event log; following from the start");
            0
        }
    };
    while tick(period, &mut shutdown).await {
        match state.fleet.follow_states(&state.db, cursor).await {
            Ok(next) => cursor = next,
            Err(err) => tracing::warn!(error = %err, "could not follow other servers' changes"),
        }
    }
}

/// Tells the live index the zone set in force, at start and after every change, so it
/// knows which scooters stand in the service area. Until it has, nearby search tests each
/// candidate itself: the answers are the same, only slower.
async fn place_in_zones(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut sets = state.zones.subscribe();
    loop {
        let set: Arc<dyn ServiceArea> = sets.borrow_and_update().clone();
        let fleet = state.fleet.clone();
        if let Err(err) = tokio::task::spawn_blocking(move || fleet.set_area(set)).await {
            tracing::warn!(error = %err, "could not place the fleet in the zones");
        }
        tokio::select! {
            changed = sets.changed() => if changed.is_err() { break },
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
}

/// Rebuilds the live index's tree when moves have worn it, looking every sweep interval.
async fn refit_tree(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.config.fleet_sweep_interval_ms.max(10));
    while tick(period, &mut shutdown).await {
        let fleet = state.fleet.clone();
        match tokio::task::spawn_blocking(move || fleet.refit_tree()).await {
            Ok(Some(rebuilt)) => {
                metrics::histogram!("scootfleet_index_rebuild_seconds")
                    .record(rebuilt.took.as_secs_f64());
                metrics::histogram!("scootfleet_index_rebuild_locked_seconds")
                    .record(rebuilt.locked.as_secs_f64());
                tracing::info!(
                    entries = rebuilt.entries,
                    took_ms = rebuilt.took.as_secs_f64() * 1e3,
                    locked_ms = rebuilt.locked.as_secs_f64() * 1e3,
                    "live index tree rebuilt"
                );
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "could not rebuild the live index tree"),
        }
    }
}

async fn expire_telemetry(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_secs(state.config.telemetry_retention_interval_secs.max(1));
    let retention_ms = i64::from(state.config.telemetry_retention_days) * 86_400_000;
    loop {
        let cutoff = state.clock.now().timestamp_millis() - retention_ms;
        match store::delete_points_before(&state.db, cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired telemetry deleted"),
            Err(err) => tracing::warn!(error = %err, "could not delete expired telemetry"),
        }
        if !tick(period, &mut shutdown).await {
            break;
        }
    }
}
