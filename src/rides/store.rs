//! Rides, reservations, ride events and device commands in the database.
//!
//! Functions ending in `_on` run on a connection of a transaction the caller opened, so a
//! ride's rows, the scooter's state and the charge commit together.

use crate::db::{raw, Conn, Db};
use crate::error::Error;
use crate::{conn_run, db_run, db_write};

const RIDE_COLUMNS: &str = "id, rider_id, scooter_id, status, started_at_ms, ended_at_ms, \
     start_lat, start_lon, end_lat, end_lon, price_per_minute, currency, duration_s, \
     billed_minutes, amount_cents, trial_minutes, pack_minutes, wallet_cents, vat_cents, \
     receipt_id, cancel_reason, outside_zone_since_ms, speed_limit_kmh, vat_rate, \
     trial_minutes_offered";

/// A ride as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RideRow {
    pub id: String,
    pub rider_id: String,
    pub scooter_id: String,
    pub status: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub start_lat: f64,
    pub start_lon: f64,
    pub end_lat: Option<f64>,
    pub end_lon: Option<f64>,
    pub price_per_minute: String,
    pub currency: String,
    pub duration_s: Option<i64>,
    pub billed_minutes: Option<i64>,
    pub amount_cents: Option<i64>,
    pub trial_minutes: Option<i64>,
    pub pack_minutes: Option<i64>,
    pub wallet_cents: Option<i64>,
    pub vat_cents: Option<i64>,
    pub receipt_id: Option<String>,
    pub cancel_reason: Option<String>,
    pub outside_zone_since_ms: Option<i64>,
    pub speed_limit_kmh: Option<f64>,
    /// The VAT rate in force at unlock, which the ride is charged at (a fraction, e.g. "0.2").
    pub vat_rate: Option<String>,
    /// The free minutes a first ride was offered at unlock.
    pub trial_minutes_offered: Option<i64>,
}

pub async fn ride(db: &Db, ride_id: &str) -> Result<Option<RideRow>, Error> {
    let sql = format!("select {RIDE_COLUMNS} from rides where id = $1");
    Ok(db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(ride_id)
        .fetch_optional(pool)
        .await)?)
}

pub async fn ride_by_receipt(db: &Db, receipt_id: &str) -> Result<Option<RideRow>, Error> {
    let sql = format!("select {RIDE_COLUMNS} from rides where receipt_id = $1");
    Ok(db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(receipt_id)
        .fetch_optional(pool)
        .await)?)
}

/// A rider's rides, newest first, at most `limit`, started before `before_ms`.
pub async fn rides_of(
    db: &Db,
    rider_id: &str,
    before_ms: i64,
    limit: i64,
) -> Result<Vec<RideRow>, Error> {
    let sql = format!(
        "select {RIDE_COLUMNS} from rides where rider_id = $1 and started_at_ms < $2 \
         order by started_at_ms desc, id desc limit $3"
    );
    Ok(db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(rider_id)
        .bind(before_ms)
        .bind(limit)
        .fetch_all(pool)
        .await)?)
}

pub async fn active_ride_of_rider(db: &Db, rider_id: &str) -> Result<Option<RideRow>, Error> {
    let sql = format!("select {RIDE_COLUMNS} from rides where rider_id = $1 and status = 'active'");
    Ok(db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(rider_id)
        .fetch_optional(pool)
        .await)?)
}

pub async fn active_ride_on_scooter(db: &Db, scooter_id: &str) -> Result<Option<RideRow>, Error> {
    let sql =
        format!("select {RIDE_COLUMNS} from rides where scooter_id = $1 and status = 'active'");
    Ok(db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(scooter_id)
        .fetch_optional(pool)
        .await)?)
}

/// An active reservation, as the unlock checks see it.
#[derive(Clone, Debug)]
pub struct Hold {
    pub id: String,
    pub rider_id: String,
    pub scooter_id: String,
}

/// What the database says about a rider and a scooter before an unlock or a reservation.
#[derive(Debug)]
pub struct StoredFacts {
    /// The scooter's stored state and reason, `None` when it is not registered.
    pub scooter_state: Option<(String, Option<String>)>,
    pub rider_has_active_ride: bool,
    /// The active reservation on the scooter, whoever holds it.
    pub scooter_hold: Option<Hold>,
    /// The rider's own active reservation, on whichever scooter.
    pub rider_hold: Option<Hold>,
    pub balance_cents: i64,
    pub pack_minutes: i64,
    pub trial_uses: i64,
}

type FactsRow = (
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
);

/// Reads everything an unlock is judged on in one round trip.
pub async fn stored_facts(
    db: &Db,
    rider_id: &str,
    scooter_id: &str,
    wallet_account: &str,
) -> Result<StoredFacts, Error> {
    let row: FactsRow = db_run!(db, |pool| sqlx::query_as(
        "select \
           (select state from scooters where scooter_id = $1), \
           (select state_reason from scooters where scooter_id = $1), \
           (select count(*) from rides where rider_id = $2 and status = 'active'), \
           (select id from reservations where scooter_id = $1 and status = 'active'), \
           (select rider_id from reservations where scooter_id = $1 and status = 'active'), \
           (select id from reservations where rider_id = $2 and status = 'active'), \
           (select scooter_id from reservations where rider_id = $2 and status = 'active'), \
           (select cast(coalesce(sum(amount_cents), 0) as bigint) from ledger_entries \
             where account_code = $3), \
           (select cast(coalesce(sum(minutes), 0) as bigint) from pack_minute_movements \
             where rider_id = $2), \
           (select count(*) from free_trial_uses where rider_id = $2)"
    )
    .bind(scooter_id)
    .bind(rider_id)
    .bind(wallet_account)
    .fetch_one(pool)
    .await)?;
    let (state, reason, active, s_id, s_rider, r_id, r_scooter, balance, packs, trials) = row;
    Ok(StoredFacts {
        scooter_state: state.map(|state| (state, reason)),
        rider_has_active_ride: active > 0,
        scooter_hold: s_id.zip(s_rider).map(|(id, rider_id)| Hold {
            id,
            rider_id,
            scooter_id: scooter_id.to_owned(),
        }),
        rider_hold: r_id.zip(r_scooter).map(|(id, scooter_id)| Hold {
            id,
            rider_id: rider_id.to_owned(),
            scooter_id,
        }),
        balance_cents: balance,
        pack_minutes: packs,
        trial_uses: trials,
    })
}

/// A ride about to start.
#[derive(Debug)]
pub struct NewRide<'a> {
    pub id: &'a str,
    pub rider_id: &'a str,
    pub scooter_id: &'a str,
    pub started_at_ms: i64,
    pub lat: f64,
    pub lon: f64,
    pub price_per_minute: &'a str,
    pub currency: &'a str,
    pub vat_rate: &'a str,
    pub trial_minutes_offered: i64,
}

impl NewRide<'_> {
    /// The ride as [`insert_ride_on`] stores it.
    pub fn to_row(&self) -> RideRow {
        RideRow {
            id: self.id.to_owned(),
            rider_id: self.rider_id.to_owned(),
            scooter_id: self.scooter_id.to_owned(),
            status: super::RideStatus::Active.as_str().to_owned(),
            started_at_ms: self.started_at_ms,
            ended_at_ms: None,
            start_lat: self.lat,
            start_lon: self.lon,
            end_lat: None,
            end_lon: None,
            price_per_minute: self.price_per_minute.to_owned(),
            currency: self.currency.to_owned(),
            duration_s: None,
            billed_minutes: None,
            amount_cents: None,
            trial_minutes: None,
            pack_minutes: None,
            wallet_cents: None,
            vat_cents: None,
            receipt_id: None,
            cancel_reason: None,
            outside_zone_since_ms: None,
            speed_limit_kmh: None,
            vat_rate: Some(self.vat_rate.to_owned()),
            trial_minutes_offered: Some(self.trial_minutes_offered),
        }
    }
}

/// An active ride: `$1` id, `$2` rider, `$3` scooter, `$4` start, `$5` lat, `$6` lon, `$7`
/// price per minute, `$8` currency, `$9` VAT rate, `$10` trial minutes offered. A `select`,
/// so that a chained statement may follow it with `from` the rows it depends on.
pub(crate) const INSERT_RIDE: &str = "insert into rides (id, rider_id, scooter_id, status, \
     started_at_ms, start_lat, start_lon, price_per_minute, currency, vat_rate, \
     trial_minutes_offered) \
     select $1, $2, $3, 'active', $4, $5, $6, $7, $8, $9, $10";

impl NewRide<'_> {
    /// The values of [`INSERT_RIDE`], in order.
    pub fn args(&self) -> [&dyn rusqlite::ToSql; 10] {
        [
            &self.id,
            &self.rider_id,
            &self.scooter_id,
            &self.started_at_ms,
            &self.lat,
            &self.lon,
            &self.price_per_minute,
            &self.currency,
            &self.vat_rate,
            &self.trial_minutes_offered,
        ]
    }

    /// [`INSERT_RIDE`]'s values bound to `query`, in order.
    pub fn bind<'q, DB: sqlx::Database>(
        &'q self,
        query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        query
            .bind(self.id)
            .bind(self.rider_id)
            .bind(self.scooter_id)
            .bind(self.started_at_ms)
            .bind(self.lat)
            .bind(self.lon)
            .bind(self.price_per_minute)
            .bind(self.currency)
            .bind(self.vat_rate)
            .bind(self.trial_minutes_offered)
    }
}

/// Inserts an active ride; a unique violation means the rider or the scooter already has one.
pub async fn insert_ride_on(conn: &mut Conn<'_>, ride: &NewRide<'_>) -> Result<(), sqlx::Error> {
    conn_run!(conn, |c| ride
        .bind(sqlx::query(INSERT_RIDE))
        .execute(&mut *c)
        .await
        .map(|_| ()))
}

/// [`insert_ride_on`] on a SQLite handle.
pub fn insert_ride_raw(c: &rusqlite::Connection, ride: &NewRide<'_>) -> Result<(), sqlx::Error> {
    raw::execute(c, INSERT_RIDE, &ride.args())
        .map(|_| ())
        .map_err(raw::into_sqlx)
}

/// How a ride ends: `ended` with its bill, or `cancelled` with the reason.
#[derive(Debug)]
pub struct RideEnd<'a> {
    pub status: super::RideStatus,
    pub ended_at_ms: i64,
    pub at: (f64, f64),
    pub duration_s: i64,
    pub cancel_reason: Option<&'a str>,
    pub bill: Option<&'a RideBill>,
}

/// The charge of an ended ride, as its receipt shows it.
#[derive(Debug)]
pub struct RideBill {
    pub billed_minutes: i64,
    pub amount_cents: i64,
    pub trial_minutes: i64,
    pub pack_minutes: i64,
    pub wallet_cents: i64,
    pub vat_cents: i64,
    pub price_per_minute: String,
    /// The VAT rate charged (a fraction, e.g. "0.2").
    pub vat_rate: String,
    pub receipt_id: String,
}

/// Closes an active ride: `$1` status, `$2` end, `$3`/`$4` lat/lon, `$5` duration, `$6`
/// cancel reason, `$7`–`$15` the bill (see [`EndValues::args`]), `$16` the ride.
pub(crate) const CLOSE_RIDE: &str = "update rides set status = $1, ended_at_ms = $2, \
     end_lat = $3, end_lon = $4, duration_s = $5, cancel_reason = $6, billed_minutes = $7, \
     amount_cents = $8, trial_minutes = $9, pack_minutes = $10, wallet_cents = $11, \
     vat_cents = $12, price_per_minute = coalesce($13, price_per_minute), receipt_id = $14, \
     vat_rate = $15 where id = $16 and status = 'active'";

/// A closed ride's values, as [`CLOSE_RIDE`] binds them.
#[derive(Debug)]
pub struct EndValues<'a> {
    status: &'static str,
    ended_at_ms: i64,
    lat: f64,
    lon: f64,
    duration_s: i64,
    cancel_reason: Option<&'a str>,
    billed_minutes: Option<i64>,
    amount_cents: Option<i64>,
    trial_minutes: Option<i64>,
    pack_minutes: Option<i64>,
    wallet_cents: Option<i64>,
    vat_cents: Option<i64>,
    price_per_minute: Option<&'a str>,
    receipt_id: Option<&'a str>,
    vat_rate: Option<&'a str>,
}

impl<'a> RideEnd<'a> {
    pub fn values(&self) -> EndValues<'a> {
        let bill = self.bill;
        EndValues {
            status: self.status.as_str(),
            ended_at_ms: self.ended_at_ms,
            lat: self.at.0,
            lon: self.at.1,
            duration_s: self.duration_s,
            cancel_reason: self.cancel_reason,
            billed_minutes: bill.map(|b| b.billed_minutes),
            amount_cents: bill.map(|b| b.amount_cents),
            trial_minutes: bill.map(|b| b.trial_minutes),
            pack_minutes: bill.map(|b| b.pack_minutes),
            wallet_cents: bill.map(|b| b.wallet_cents),
            vat_cents: bill.map(|b| b.vat_cents),
            price_per_minute: bill.map(|b| b.price_per_minute.as_str()),
            receipt_id: bill.map(|b| b.receipt_id.as_str()),
            vat_rate: bill.map(|b| b.vat_rate.as_str()),
        }
    }
}

impl EndValues<'_> {
    /// `$1`–`$15` of [`CLOSE_RIDE`], in order.
    pub fn args(&self) -> [&dyn rusqlite::ToSql; 15] {
        [
            &self.status,
            &self.ended_at_ms,
            &self.lat,
            &self.lon,
            &self.duration_s,
            &self.cancel_reason,
            &self.billed_minutes,
            &self.amount_cents,
            &self.trial_minutes,
            &self.pack_minutes,
            &self.wallet_cents,
            &self.vat_cents,
            &self.price_per_minute,
            &self.receipt_id,
            &self.vat_rate,
        ]
    }

    /// `$1`–`$15` of [`CLOSE_RIDE`] bound to `query`, in order.
    pub fn bind<'q, DB: sqlx::Database>(
        &'q self,
        query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        query
            .bind(self.status)
            .bind(self.ended_at_ms)
            .bind(self.lat)
            .bind(self.lon)
            .bind(self.duration_s)
            .bind(self.cancel_reason)
            .bind(self.billed_minutes)
            .bind(self.amount_cents)
            .bind(self.trial_minutes)
            .bind(self.pack_minutes)
            .bind(self.wallet_cents)
            .bind(self.vat_cents)
            .bind(self.price_per_minute)
            .bind(self.receipt_id)
            .bind(self.vat_rate)
    }
}

/// Closes an active ride, with its bill when it has one, in one statement; false when it
/// was no longer active.
pub async fn close_ride_on(
    conn: &mut Conn<'_>,
    ride_id: &str,
    end: &RideEnd<'_>,
) -> Result<bool, sqlx::Error> {
    let values = end.values();
    conn_run!(conn, |c| {
        values
            .bind(sqlx::query(CLOSE_RIDE))
            .bind(ride_id)
            .execute(&mut *c)
            .await
            .map(|done| done.rows_affected() == 1)
    })
}

/// [`close_ride_on`] on a SQLite handle.
pub fn close_ride_raw(
    c: &rusqlite::Connection,
    ride_id: &str,
    end: &RideEnd<'_>,
) -> rusqlite::Result<bool> {
    let values = end.values();
    let mut args = values.args().to_vec();
    args.push(&ride_id);
    Ok(raw::execute(c, CLOSE_RIDE, &args)? == 1)
}

/// Records something that happened during a ride.
pub async fn insert_ride_event(
    db: &Db,
    ride_id: &str,
    kind: &str,
    lat: f64,
    lon: f64,
    at_ms: i64,
) -> Result<(), Error> {
    let id = crate::ids::new_id("rev");
    db_write!(db, |pool| {
        sqlx::query(
        "insert into ride_events (id, ride_id, kind, lat, lon, at_ms) values ($1, $2, $3, $4, $5, $6)"
    )
    .bind(&id)
    .bind(ride_id)
    .bind(kind)
    .bind(lat)
    .bind(lon)
    .bind(at_ms)
    .execute(pool)
    .await
    .map(|_| ())
    })?;
    Ok(())
}

/// A ride's events, oldest first.
pub async fn ride_events(db: &Db, ride_id: &str) -> Result<Vec<(String, f64, f64, i64)>, Error> {
    Ok(db_run!(db, |pool| sqlx::query_as(
        "select kind, lat, lon, at_ms from ride_events where ride_id = $1 order by at_ms, id"
    )
    .bind(ride_id)
    .fetch_all(pool)
    .await)?)
}

/// Marks since when an active ride has been outside the service area (`None`: back inside).
pub async fn set_outside_zone(db: &Db, ride_id: &str, since_ms: Option<i64>) -> Result<(), Error> {
    db_write!(db, |pool| sqlx::query(
        "update rides set outside_zone_since_ms = $1 where id = $2 and status = 'active'"
    )
    .bind(since_ms)
    .bind(ride_id)
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Remembers the speed limit last commanded for an active ride.
pub async fn set_speed_limit(db: &Db, ride_id: &str, kmh: Option<f64>) -> Result<(), Error> {
    db_write!(db, |pool| sqlx::query(
        "update rides set speed_limit_kmh = $1 where id = $2 and status = 'active'"
    )
    .bind(kmh)
    .bind(ride_id)
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Rides ended since `since_ms`: how many, their billed minutes and their amount in cents;
/// and how many rides are active now.
pub async fn numbers_since(db: &Db, since_ms: i64) -> Result<(i64, i64, i64, i64), Error> {
    Ok(db_run!(db, |pool| sqlx::query_as(
        "select \
           (select count(*) from rides where status = 'ended' and ended_at_ms >= $1), \
           (select cast(coalesce(sum(billed_minutes), 0) as bigint) from rides \
             where status = 'ended' and ended_at_ms >= $1), \
           (select cast(coalesce(sum(amount_cents), 0) as bigint) from rides \
             where status = 'ended' and ended_at_ms >= $1), \
           (select count(*) from rides where status = 'active')"
    )
    .bind(since_ms)
    .fetch_one(pool)
    .await)?)
}
