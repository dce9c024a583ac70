//! The ride flows: unlock, end, cancel an unconfirmed unlock, reserve and release.
//!
//! Each flow checks the rules on what the database says, then writes everything it changes
//! (ride, reservation, scooter state, charge, command) in one transaction whose first
//! statement is a write. Two riders racing for one scooter meet at the database's unique
//! indexes and conditional updates: exactly one wins, on any number of servers.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::commands::{self, CommandKind, NewCommand};
use super::store::{self, Hold, NewRide, RideBill, RideRow};
use super::{on_postgres, on_sqlite, reservations};
use super::{unlock_refusal, UnlockFacts, UnlockRefusal};
use crate::app::AppState;
use crate::billing::{self, RideCharge};
use crate::db::{is_unique_violation, raw, Conn, Db};
use crate::error::Error;
use crate::fleet::{self, Event, ScooterState};
use crate::{db_transaction, db_write};

/// Why the ride of a scooter that never confirmed its unlock was cancelled.
pub const UNCONFIRMED_UNLOCK: &str = "The scooter did not confirm that it unlocked, so we \
     cancelled the ride and charged nothing. Sorry about that: please try another scooter nearby.";

fn not_found() -> Error {
    Error::not_found("not_found", "We could not find this ride.")
}

pub(super) fn ride_not_active() -> Error {
    Error::conflict("ride_not_active", "This ride is not in progress any more.")
}

/// What the checks before an unlock or a reservation found.
pub(super) struct Situation {
    pub(super) scooter: fleet::Scooter,
    pub(super) stored_state: ScooterState,
    /// The active reservation on the scooter, whoever holds it.
    reservation: Option<Hold>,
    /// The rider's own active reservation, on whichever scooter.
    pub(super) rider_hold: Option<Hold>,
    /// The tariff the rider was judged on, and is quoted.
    tariff: std::sync::Arc<billing::Tariff>,
}

/// Gathers the facts an unlock or reservation is judged on (one read of the database),
/// refusing in the contract's order.
pub(super) async fn judge(
    state: &AppState,
    rider_id: &str,
    scooter_id: &str,
    now: DateTime<Utc>,
) -> Result<Situation, Error> {
    let Some(scooter) = state.fleet.get(scooter_id) else {
        return Err(UnlockRefusal::ScooterNotFound.into());
    };
    let wallet_account = billing::ledger::wallet_account(rider_id);
    let stored = store::stored_facts(&state.db, rider_id, scooter_id, &wallet_account).await?;
    // The stored state is the truth when several servers share the database.
    let stored_state = match &stored.scooter_state {
        Some((name, reason)) => ScooterState::parse(name, reason.as_deref())
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown stored state {name}")))?,
        None => scooter.state,
    };
    let reservation = stored.scooter_hold;
    let reserved_by_me = reservation.as_ref().is_some_and(|r| r.rider_id == rider_id);
    let free = match stored_state {
        ScooterState::Available => reservation.is_none(),
        ScooterState::Reserved => reserved_by_me,
        _ => false,
    };
    let tariff = state.tariff.current();
    let wallet = billing::Wallet::from_sums(
        tariff.free_trial_minutes,
        stored.balance_cents,
        stored.pack_minutes,
        stored.trial_uses,
    );
    let facts = UnlockFacts {
        scooter_exists: true,
        rider_has_active_ride: stored.rider_has_active_ride,
        service_open: state.hours.is_open(now),
        scooter_free_for_rider: free,
        range_at_or_above_floor: scooter.range_km >= state.fleet.rental_floor_km,
        scooter_inside_zone: state.zones.in_service_area(scooter.lat, scooter.lon),
        rider_can_pay: wallet.can_unlock(&tariff).is_ok(),
    };
    match unlock_refusal(&facts) {
        // The wallet says best why payment is needed (a debt, or too little balance).
        Some(UnlockRefusal::PaymentRequired) => Err(wallet
            .can_unlock(&tariff)
            .err()
            .unwrap_or_else(|| UnlockRefusal::PaymentRequired.into())),
        Some(refusal) => Err(refusal.into()),
        None => Ok(Situation {
            scooter,
            stored_state,
            reservation,
            rider_hold: stored.rider_hold,
            tariff,
        }),
    }
}

/// Starts a ride: the scooter goes `on_trip` and gets an `unlock` command.
pub async fn unlock(state: &AppState, rider_id: &str, scooter_id: &str) -> Result<RideRow, Error> {
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    let situation = judge(state, rider_id, scooter_id, now).await?;
    let ride_id = crate::ids::new_id("ride");
    // The rate quoted now is the rate billed at the end (see `finish`).
    let price = billing::money(situation.tariff.rate_per_minute);
    let vat_rate = situation.tariff.vat_rate.normalize().to_string();
    let new = NewRide {
        id: &ride_id,
        rider_id,
        scooter_id,
        started_at_ms: now_ms,
        lat: situation.scooter.lat,
        lon: situation.scooter.lon,
        price_per_minute: &price,
        currency: &situation.tariff.currency,
        vat_rate: &vat_rate,
        trial_minutes_offered: situation.tariff.free_trial_minutes,
    };
    let mine = situation
        .reservation
        .as_ref()
        .filter(|r| r.rider_id == rider_id)
        .map(|r| r.id.clone());
    // A hold on another scooter ends when the rider rides off on this one.
    let elsewhere = situation
        .rider_hold
        .as_ref()
        .filter(|r| r.scooter_id != scooter_id);
    let start = Start {
        ride: &new,
        from: situation.stored_state,
        mine: mine.as_deref(),
        elsewhere,
        command: NewCommand::new(
            scooter_id,
            Some(&ride_id),
            CommandKind::Unlock,
            &json!({}),
            now_ms,
        ),
    };
    let started = match &state.db {
        Db::Sqlite { write, .. } => match write.acquire().await {
            Ok(mut conn) => raw::transaction(&mut conn, |c| on_sqlite::start(c, &start)).await,
            Err(err) => Err(err.into()),
        },
        Db::Postgres(pool) if start.mine.is_none() && start.elsewhere.is_none() => {
            on_postgres::start(pool, &start).await
        }
        Db::Postgres(_) => start_on_pool(state, &start).await,
    };
    // A refused unlock's transaction was dropped, uncommitted: nothing of it happened.
    let (version, freed) = match started {
        Ok(started) => started,
        Err(NotStarted::LostRace) => return Err(lost_race(state, rider_id).await),
        Err(NotStarted::Refused(err)) => return Err(err),
    };
    state
        .fleet
        .committed_state(scooter_id, ScooterState::OnTrip, version);
    if let Some((other, version)) = freed {
        state
            .fleet
            .committed_state(&other, ScooterState::Available, version);
    }
    // The row just committed, without reading it back.
    Ok(new.to_row())
}

/// What an unlock's transaction writes.
pub(super) struct Start<'a> {
    pub(super) ride: &'a NewRide<'a>,
    /// The scooter's state the unlock was judged on.
    pub(super) from: ScooterState,
    /// The rider's reservation of this scooter, converted into the ride.
    pub(super) mine: Option<&'a str>,
    /// The rider's reservation of another scooter, cancelled.
    pub(super) elsewhere: Option<&'a Hold>,
    pub(super) command: NewCommand<'a>,
}

/// A started ride: the scooter's new state version, and the scooter of a reservation given
/// up elsewhere with its version.
pub(super) type Started = (i64, Option<(String, i64)>);

/// Why an unlock's transaction was dropped, uncommitted.
pub(super) enum NotStarted {
    /// Another ride of the rider or on the scooter met this one at the unique indexes.
    LostRace,
    Refused(Error),
}

impl From<sqlx::Error> for NotStarted {
    fn from(err: sqlx::Error) -> Self {
        NotStarted::Refused(err.into())
    }
}

/// The unlock's transaction through the pool, a statement a round trip: on PostgreSQL when
/// it ends a reservation.
async fn start_on_pool(state: &AppState, start: &Start<'_>) -> Result<Started, NotStarted> {
    let now_ms = start.ride.started_at_ms;
    let scooter_id = start.ride.scooter_id;
    db_transaction!(&state.db, |tx| {
        let mut conn = Conn::from(&mut *tx);
        if let Err(err) = store::insert_ride_on(&mut conn, start.ride).await {
            return Err(if is_unique_violation(&err) {
                NotStarted::LostRace
            } else {
                err.into()
            });
        }
        if let Some(reservation_id) = start.mine {
            reservations::close_on(&mut conn, reservation_id, "converted", now_ms).await?;
        }
        let mut freed = None;
        if let Some(other) = start.elsewhere {
            if reservations::close_on(&mut conn, &other.id, "cancelled", now_ms).await? {
                freed = fleet::store::change_state_on(
                    &mut conn,
                    &other.scooter_id,
                    ScooterState::Reserved,
                    ScooterState::Available,
                    Event::ReservationCancel,
                    now_ms,
                )
                .await?
                .map(|version| (other.scooter_id.clone(), version));
            }
        }
        let changed = fleet::store::change_state_on(
            &mut conn,
            scooter_id,
            start.from,
            ScooterState::OnTrip,
            Event::TripStart,
            now_ms,
        )
        .await?;
        let Some(version) = changed else {
            return Err(NotStarted::Refused(
                UnlockRefusal::ScooterUnavailable.into(),
            ));
        };
        commands::queue_new_on(&mut conn, &start.command).await?;
        tx.commit().await?;
        Ok((version, freed))
    })
}

/// The refusal for an unlock that met another ride at the unique indexes.
async fn lost_race(state: &AppState, rider_id: &str) -> Error {
    match store::active_ride_of_rider(&state.db, rider_id).await {
        Ok(Some(_)) => UnlockRefusal::RiderHasActiveRide.into(),
        Ok(None) => UnlockRefusal::ScooterUnavailable.into(),
        Err(err) => err,
    }
}

/// A rider's own ride, or 404 (another rider's ride is not theirs to see).
pub async fn own_ride(state: &AppState, rider_id: &str, ride_id: &str) -> Result<RideRow, Error> {
    match store::ride(&state.db, ride_id).await? {
        Some(ride) if ride.rider_id == rider_id => Ok(ride),
        _ => Err(not_found()),
    }
}

/// Ends a rider's ride where the scooter last reported itself, if parking is allowed there.
pub async fn end(state: &AppState, rider_id: &str, ride_id: &str) -> Result<RideRow, Error> {
    let ride = own_ride(state, rider_id, ride_id).await?;
    finish_where_parked(state, ride).await
}

/// Ends the ride on a scooter that reports it was locked (the rider's phone may be dead).
pub async fn end_by_scooter(state: &AppState, scooter_id: &str) -> Result<RideRow, Error> {
    let ride = store::active_ride_on_scooter(&state.db, scooter_id)
        .await?
        .ok_or_else(ride_not_active)?;
    finish_where_parked(state, ride).await
}

async fn finish_where_parked(state: &AppState, ride: RideRow) -> Result<RideRow, Error> {
    if ride.status != super::RideStatus::Active.as_str() {
        return Err(ride_not_active());
    }
    let (lat, lon) = state
        .fleet
        .get(&ride.scooter_id)
        .map(|s| (s.lat, s.lon))
        .unwrap_or((ride.start_lat, ride.start_lon));
    if let Err(refusal) = state.zones.parking_verdict(lat, lon) {
        return Err(Error::unprocessable(
            "parking_not_allowed",
            refusal.detail(),
        ));
    }
    finish(state, &ride, lat, lon).await
}

/// Ends and charges a ride, frees its scooter and queues the `lock` command, atomically.
async fn finish(state: &AppState, ride: &RideRow, lat: f64, lon: f64) -> Result<RideRow, Error> {
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    // Every started second counts, so that every started minute is billed.
    let duration_s = ((now_ms - ride.started_at_ms).max(0) + 999) / 1000;
    let receipt_id = crate::ids::new_id("rcpt");
    let tariff = state.tariff.current();
    let rate_per_minute: rust_decimal::Decimal = ride.price_per_minute.parse().map_err(|_| {
        Error::Internal(anyhow::anyhow!(
            "ride {} has price per minute {:?}",
            ride.id,
            ride.price_per_minute
        ))
    })?;
    // The terms of the unlock; rides started before they were kept take today's.
    let vat_rate = match ride.vat_rate.as_deref().map(str::parse) {
        Some(Ok(rate)) => rate,
        _ => tariff.vat_rate,
    };
    let free_trial_minutes = ride
        .trial_minutes_offered
        .unwrap_or(tariff.free_trial_minutes);
    let finish = Finish {
        ride,
        tariff: &tariff,
        charge: RideCharge {
            rider_id: &ride.rider_id,
            ride_id: &ride.id,
            duration_s,
            rate_per_minute,
            vat_rate,
            free_trial_minutes,
            at: now,
        },
        receipt_id,
        at: (lat, lon),
        commands: end_commands(ride, now_ms),
    };
    let (version, bill) = match &state.db {
        Db::Sqlite { write, .. } => {
            let mut conn = write.acquire().await?;
            raw::transaction(&mut conn, |c| on_sqlite::finish(c, &finish)).await?
        }
        Db::Postgres(pool) => on_postgres::finish(pool, &finish).await?,
    };
    match version {
        Some(version) => {
            state
                .fleet
                .committed_state(&ride.scooter_id, ScooterState::Available, version)
        }
        None => {
            tracing::warn!(scooter = %ride.scooter_id, "ride ended on a scooter that was not on a trip")
        }
    }
    // The row just committed, without reading it back.
    Ok(RideRow {
        status: super::RideStatus::Ended.as_str().to_owned(),
        ended_at_ms: Some(now_ms),
        end_lat: Some(lat),
        end_lon: Some(lon),
        duration_s: Some(duration_s),
        billed_minutes: Some(bill.billed_minutes),
        amount_cents: Some(bill.amount_cents),
        trial_minutes: Some(bill.trial_minutes),
        pack_minutes: Some(bill.pack_minutes),
        wallet_cents: Some(bill.wallet_cents),
        vat_cents: Some(bill.vat_cents),
        price_per_minute: bill.price_per_minute,
        receipt_id: Some(bill.receipt_id),
        vat_rate: Some(bill.vat_rate),
        ..ride.clone()
    })
}

/// What a ride's end writes.
pub(super) struct Finish<'a> {
    pub(super) ride: &'a RideRow,
    pub(super) tariff: &'a billing::Tariff,
    pub(super) charge: RideCharge<'a>,
    pub(super) receipt_id: String,
    /// Where the ride ends.
    pub(super) at: (f64, f64),
    /// The commands the scooter gets, in order.
    pub(super) commands: Vec<NewCommand<'a>>,
}

/// An ended ride: its scooter's new state version (`None` when it was not on a trip), and
/// its bill.
pub(super) type Finished = (Option<i64>, RideBill);

impl Finish<'_> {
    /// The bill of `charged`, as the ride row keeps it.
    pub(super) fn bill(&self, charged: &billing::store::ChargedRide) -> RideBill {
        RideBill {
            billed_minutes: charged.breakdown.billed_minutes,
            amount_cents: billing::to_cents(charged.breakdown.amount),
            trial_minutes: charged.breakdown.free_trial_minutes,
            pack_minutes: charged.breakdown.pack_minutes,
            wallet_cents: billing::to_cents(charged.breakdown.wallet_amount),
            vat_cents: billing::to_cents(charged.vat),
            price_per_minute: billing::money(charged.rate),
            vat_rate: self.charge.vat_rate.normalize().to_string(),
            receipt_id: self.receipt_id.clone(),
        }
    }

    /// The ride's end, billed `bill`.
    pub(super) fn end<'b>(&self, bill: &'b RideBill) -> store::RideEnd<'b> {
        store::RideEnd {
            status: super::RideStatus::Ended,
            ended_at_ms: self.charge.at.timestamp_millis(),
            at: self.at,
            duration_s: self.charge.duration_s,
            cancel_reason: None,
            bill: Some(bill),
        }
    }
}

/// The `lock` command, after lifting a speed limit the ride had: the next rider may ride
/// where no limit applies.
fn end_commands(ride: &RideRow, now_ms: i64) -> Vec<NewCommand<'_>> {
    let mut commands = Vec::with_capacity(2);
    if ride.speed_limit_kmh.is_some() {
        commands.push(NewCommand::new(
            &ride.scooter_id,
            Some(&ride.id),
            CommandKind::SpeedLimit,
            &json!({ "max_speed_kmh": null }),
            now_ms,
        ));
    }
    commands.push(NewCommand::new(
        &ride.scooter_id,
        Some(&ride.id),
        CommandKind::Lock,
        &json!({}),
        now_ms,
    ));
    commands
}

/// Cancels, unbilled, a ride whose scooter never confirmed its unlock. Does nothing when
/// the scooter confirmed in the meantime or the ride is over.
pub async fn cancel_unconfirmed(
    state: &AppState,
    command_id: &str,
    ride_id: &str,
) -> Result<(), Error> {
    let now_ms = state.clock.now().timestamp_millis();
    let Some(ride) = store::ride(&state.db, ride_id).await? else {
        return Ok(());
    };
    let active = ride.status == super::RideStatus::Active.as_str();
    let version = db_write!(&state.db, |pool| {
        let mut tx = pool.begin().await?;
        let mut conn = Conn::from(&mut *tx);
        if !commands::expire_on(&mut conn, command_id).await? {
            return Ok(());
        }
        let mut version = None;
        if active {
            let duration_s = (now_ms - ride.started_at_ms).max(0) / 1000;
            let end = store::RideEnd {
                status: super::RideStatus::Cancelled,
                ended_at_ms: now_ms,
                at: (ride.start_lat, ride.start_lon),
                duration_s,
                cancel_reason: Some(UNCONFIRMED_UNLOCK),
                bill: None,
            };
            if store::close_ride_on(&mut conn, ride_id, &end).await? {
                version = fleet::store::change_state_on(
                    &mut conn,
                    &ride.scooter_id,
                    ScooterState::OnTrip,
                    ScooterState::Available,
                    Event::TripCancel,
                    now_ms,
                )
                .await?;
            }
        }
        tx.commit().await?;
        version
    });
    if let Some(version) = version {
        state
            .fleet
            .committed_state(&ride.scooter_id, ScooterState::Available, version);
    }
    if active {
        tracing::info!(ride = %ride_id, scooter = %ride.scooter_id, "ride cancelled: unlock not confirmed");
    }
    Ok(())
}
