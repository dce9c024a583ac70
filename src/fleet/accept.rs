//! What follows a scooter's accepted points, whichever way they came (HTTP or MQTT): a
//! silent scooter is back, and dispatch hears the newest range.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{ChangeError, Event, Reading, ScooterState};
use crate::app::AppState;
use crate::dispatch::{self, ScooterReport};
use crate::error::Error;

/// Whether every write that accepting points made is on disk when [`accept_points`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Followed {
    /// The points alone were written, and they are on disk.
    Nothing,
    /// The points are on disk, but a state change or dispatch wrote after them: an answer
    /// waits for [`crate::db::Db::durable`] first.
    Writes,
}

/// Stores `points` durably, then brings a silent scooter back and reports its range to
/// dispatch. Once this returns `Ok`, the points are committed and on disk; whatever else
/// was written is on disk too when it says [`Followed::Nothing`].
pub async fn accept_points(
    state: &AppState,
    scooter_id: Arc<str>,
    points: Vec<Reading>,
    now: DateTime<Utc>,
) -> Result<Followed, Error> {
    state.fleet.ingest(scooter_id.clone(), points, now).await?;
    let Some(scooter) = state.fleet.get(&scooter_id) else {
        return Ok(Followed::Nothing);
    };
    let mut followed = Followed::Nothing;
    if scooter.state == ScooterState::NonContactable {
        followed = Followed::Writes;
        match state
            .fleet
            .change_state(&state.db, &scooter_id, Event::CommsRestored, now)
            .await
        {
            // Losing this race (another point, another server) is fine: it is back either way.
            Ok(_) | Err(ChangeError::NotAllowed { .. } | ChangeError::UnknownScooter) => {}
            Err(ChangeError::Internal(err)) => return Err(err),
        }
    }
    if report_range(state, &scooter_id, now).await == Followed::Writes {
        followed = Followed::Writes;
    }
    Ok(followed)
}

/// Tells dispatch where a scooter is and how much range it has (after a point, or when a
/// ride ends), and whether dispatch wrote anything. A failure is logged, not returned: the
/// points are already safe, and the next report tries again.
pub async fn report_range(state: &AppState, scooter_id: &str, now: DateTime<Utc>) -> Followed {
    let Some(scooter) = state.fleet.get(scooter_id) else {
        return Followed::Nothing;
    };
    let report = ScooterReport {
        scooter_id: scooter_id.to_owned(),
        lat: scooter.lat,
        lon: scooter.lon,
        range_km: scooter.range_km,
        on_trip: matches!(scooter.state, ScooterState::OnTrip | ScooterState::Reserved),
        at: DateTime::from_timestamp_millis(scooter.last_seen_ms).unwrap_or(now),
    };
    match dispatch::on_scooter_report(state, report).await {
        Ok(dispatch::ReportOutcome::Nothing) => Followed::Nothing,
        Ok(_) => Followed::Writes,
        Err(err) => {
            tracing::error!(error = ?err, %scooter_id, "dispatch could not take a range report");
            // It may have written before it failed.
            Followed::Writes
        }
    }
}

/// A crew swapped the battery: the fresh range is recorded as a point at the scooter's last
/// position, the MDS `battery_charged` event is logged, and a scooter parked for a low
/// battery is rentable again at once.
pub async fn battery_swapped(
    state: &AppState,
    scooter_id: &str,
    range_km: f64,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let Some(scooter) = state.fleet.get(scooter_id) else {
        return Ok(());
    };
    let reading = Reading {
        lat: scooter.lat,
        lon: scooter.lon,
        range_km,
        battery_pct: 100.0,
        speed_kmh: None,
        recorded_at_ms: now.timestamp_millis().max(scooter.last_seen_ms + 1),
    };
    state
        .fleet
        .ingest(scooter.scooter_id.clone(), vec![reading], now)
        .await?;
    match state
        .fleet
        .change_state(&state.db, scooter_id, Event::BatteryCharged, now)
        .await
    {
        Ok(_) => {}
        // Not parked for its battery (low range alone is not a state): log the event only.
        Err(ChangeError::NotAllowed { from, .. }) => {
            super::store::record_event(
                &state.db,
                scooter_id,
                Event::BatteryCharged,
                from,
                now.timestamp_millis(),
            )
            .await?;
        }
        Err(ChangeError::UnknownScooter) => {}
        Err(ChangeError::Internal(err)) => return Err(err),
    }
    Ok(())
}
