//! Reservation flows: a rider holds a scooter free of charge, then unlocks it, cancels the
//! hold, or lets it expire. The same checks as an unlock apply; the scooter moves to
//! `reserved` and back in the transaction that opens or closes the reservation.

use axum::http::StatusCode;

use super::reservations::{self, ReservationRow};
use super::service::judge;
use super::UnlockRefusal;
use crate::app::AppState;
use crate::db::{is_unique_violation, Conn};
use crate::db_write;
use crate::error::Error;
use crate::fleet::{self, Event, ScooterState};

/// Holds a scooter for a rider, free of charge, until `expires_at`.
pub async fn reserve(
    state: &AppState,
    rider_id: &str,
    scooter_id: &str,
) -> Result<ReservationRow, Error> {
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    if reservations::active_for_rider(&state.db, rider_id)
        .await?
        .is_some()
    {
        return Err(rider_has_reservation());
    }
    let situation = judge(state, rider_id, scooter_id, now).await?;
    if situation.stored_state != ScooterState::Available {
        return Err(UnlockRefusal::ScooterUnavailable.into());
    }
    let row = ReservationRow {
        id: crate::ids::new_id("resv"),
        rider_id: rider_id.to_owned(),
        scooter_id: scooter_id.to_owned(),
        status: "active".into(),
        created_at_ms: now_ms,
        expires_at_ms: now_ms + state.config.reservation_minutes as i64 * 60_000,
        closed_at_ms: None,
    };
    let version = db_write!(&state.db, |pool| {
        let mut tx = pool.begin().await?;
        let mut conn = Conn::from(&mut *tx);
        if let Err(err) = reservations::insert_on(&mut conn, &row).await {
            drop(tx);
            if !is_unique_violation(&err) {
                return Err(err.into());
            }
            return Err(
                match reservations::active_for_rider(&state.db, rider_id).await? {
                    Some(_) => rider_has_reservation(),
                    None => UnlockRefusal::ScooterUnavailable.into(),
                },
            );
        }
        let changed = fleet::store::change_state_on(
            &mut conn,
            scooter_id,
            ScooterState::Available,
            ScooterState::Reserved,
            Event::ReservationStart,
            now_ms,
        )
        .await?;
        let Some(version) = changed else {
            drop(tx);
            return Err(UnlockRefusal::ScooterUnavailable.into());
        };
        tx.commit().await?;
        version
    });
    state
        .fleet
        .committed_state(scooter_id, ScooterState::Reserved, version);
    Ok(row)
}

fn rider_has_reservation() -> Error {
    Error::conflict(
        "rider_has_reservation",
        "You already hold a scooter. Unlock it, or cancel that reservation first.",
    )
}

/// Releases a reservation (`cancelled` by the rider or `expired`), freeing its scooter.
pub async fn release(
    state: &AppState,
    reservation: &ReservationRow,
    status: &str,
) -> Result<bool, Error> {
    let now_ms = state.clock.now().timestamp_millis();
    let outcome = db_write!(&state.db, |pool| {
        let mut tx = pool.begin().await?;
        let mut conn = Conn::from(&mut *tx);
        if !reservations::close_on(&mut conn, &reservation.id, status, now_ms).await? {
            return Ok(false);
        }
        let version = fleet::store::change_state_on(
            &mut conn,
            &reservation.scooter_id,
            ScooterState::Reserved,
            ScooterState::Available,
            Event::ReservationCancel,
            now_ms,
        )
        .await?;
        tx.commit().await?;
        version
    });
    if let Some(version) = outcome {
        state
            .fleet
            .committed_state(&reservation.scooter_id, ScooterState::Available, version);
    }
    Ok(true)
}

/// A rider cancels their own reservation.
pub async fn cancel_reservation(
    state: &AppState,
    rider_id: &str,
    id: &str,
) -> Result<ReservationRow, Error> {
    let reservation = match reservations::reservation(&state.db, id).await? {
        Some(r) if r.rider_id == rider_id => r,
        _ => {
            return Err(Error::not_found(
                "not_found",
                "We could not find this reservation.",
            ))
        }
    };
    if reservation.status != "active" || !release(state, &reservation, "cancelled").await? {
        return Err(Error::problem(
            StatusCode::CONFLICT,
            "reservation_not_active",
            "This reservation has already ended.",
        ));
    }
    reservations::reservation(&state.db, id)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("reservation {id} vanished")))
}
