//! A ride's write transactions on SQLite, each run on the writer connection's own handle in
//! one hand-off ([`crate::db::raw::transaction`]) instead of a round trip to the
//! connection's thread per statement. The statements are the stores' own SQL; the steps are
//! those of [`super::service`]'s transactions through the pool, which PostgreSQL runs.

use super::commands;
use super::reservations;
use super::service::{Finish, Finished, NotStarted, Start, Started};
use super::store;
use crate::billing;
use crate::db::{is_unique_violation, raw};
use crate::error::Error;
use crate::fleet::{self, Event, ScooterState};

/// The unlock: the ride (where the unique indexes decide a race), the reservations it ends,
/// the scooter's move to `on_trip`, the `unlock` command.
pub(super) fn start(c: &rusqlite::Connection, start: &Start<'_>) -> Result<Started, NotStarted> {
    let now_ms = start.ride.started_at_ms;
    if let Err(err) = store::insert_ride_raw(c, start.ride) {
        return Err(if is_unique_violation(&err) {
            NotStarted::LostRace
        } else {
            err.into()
        });
    }
    if let Some(reservation_id) = start.mine {
        reservations::close_raw(c, reservation_id, "converted", now_ms).map_err(raw::into_sqlx)?;
    }
    let mut freed = None;
    if let Some(other) = start.elsewhere {
        if reservations::close_raw(c, &other.id, "cancelled", now_ms).map_err(raw::into_sqlx)? {
            freed = fleet::store::change_state_raw(
                c,
                &other.scooter_id,
                ScooterState::Reserved,
                ScooterState::Available,
                Event::ReservationCancel,
                now_ms,
            )
            .map_err(raw::into_sqlx)?
            .map(|version| (other.scooter_id.clone(), version));
        }
    }
    let changed = fleet::store::change_state_raw(
        c,
        start.ride.scooter_id,
        start.from,
        ScooterState::OnTrip,
        Event::TripStart,
        now_ms,
    )
    .map_err(raw::into_sqlx)?;
    let Some(version) = changed else {
        return Err(NotStarted::Refused(
            super::UnlockRefusal::ScooterUnavailable.into(),
        ));
    };
    commands::queue_raw(c, &start.command).map_err(raw::into_sqlx)?;
    Ok((version, freed))
}

/// The end: the charge (which takes the rider's wallet lock first), the ride closed — or
/// nothing at all when another end got there first —, the scooter freed, its commands.
pub(super) fn finish(c: &rusqlite::Connection, finish: &Finish<'_>) -> Result<Finished, Error> {
    let ride = finish.ride;
    let charged = billing::charge::charge_ride_raw(c, finish.tariff, &finish.charge)?;
    let bill = finish.bill(&charged);
    if !store::close_ride_raw(c, &ride.id, &finish.end(&bill)).map_err(raw::into_sqlx)? {
        return Err(super::service::ride_not_active());
    }
    let version = fleet::store::change_state_raw(
        c,
        &ride.scooter_id,
        ScooterState::OnTrip,
        ScooterState::Available,
        Event::TripEnd,
        finish.charge.at.timestamp_millis(),
    )
    .map_err(raw::into_sqlx)?;
    for command in &finish.commands {
        commands::queue_raw(c, command).map_err(raw::into_sqlx)?;
    }
    Ok((version, bill))
}
