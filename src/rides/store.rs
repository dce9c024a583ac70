//! Rides, reservations, ride events and device commands in the database.
//!
//! Functions ending in `_on` run on a connection of a transaction the caller opened, so a
//! ride's rows, the scooter's state and the charge commit together.

use crate::db::{Conn, Db};
use crate::error::Error;
use crate::{conn_run, db_run};

const RIDE_COLUMNS: &str = "id, rider_id, scooter_id, status, started_at_ms, ended_at_ms, \
     start_lat, start_lon, end_lat, end_lon, price_per_minute, currency, duration_s, \
     billed_minutes, amount_cents, trial_minutes, pack_minutes, wallet_cents, vat_cents, \
     receipt_id, cancel_reason, outside_zone_since_ms, speed_limit_kmh, vat_rate";

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
    /// The VAT rate the ride was charged at (a fraction, e.g. "0.2"); absent before it is.
    pub vat_rate: Option<String>,
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
}

/// Inserts an active ride; a unique violation means the rider or the scooter already has one.
pub async fn insert_ride_on(conn: &mut Conn<'_>, ride: &NewRide<'_>) -> Result<(), sqlx::Error> {
    conn_run!(conn, |c| {
        sqlx::query(
            "insert into rides (id, rider_id, scooter_id, status, started_at_ms, start_lat, \
             start_lon, price_per_minute, currency) values ($1, $2, $3, 'active', $4, $5, $6, $7, $8)",
        )
        .bind(ride.id)
        .bind(ride.rider_id)
        .bind(ride.scooter_id)
        .bind(ride.started_at_ms)
        .bind(ride.lat)
        .bind(ride.lon)
        .bind(ride.price_per_minute)
        .bind(ride.currency)
        .execute(&mut *c)
        .await
        .map(|_| ())
    })
}

/// Closes an active ride (`ended` or `cancelled`); false when it was no longer active.
pub async fn close_ride_on(
    conn: &mut Conn<'_>,
    ride_id: &str,
    status: &str,
    ended_at_ms: i64,
    end: (f64, f64),
    duration_s: i64,
    cancel_reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    conn_run!(conn, |c| {
        sqlx::query(
            "update rides set status = $1, ended_at_ms = $2, end_lat = $3, end_lon = $4, \
             duration_s = $5, cancel_reason = $6 where id = $7 and status = 'active'",
        )
        .bind(status)
        .bind(ended_at_ms)
        .bind(end.0)
        .bind(end.1)
        .bind(duration_s)
        .bind(cancel_reason)
        .bind(ride_id)
        .execute(&mut *c)
        .await
        .map(|done| done.rows_affected() == 1)
    })
}

/// The charge of an ended ride, as its receipt shows it.
#[derive(Debug)]
pub struct RideBill<'a> {
    pub billed_minutes: i64,
    pub amount_cents: i64,
    pub trial_minutes: i64,
    pub pack_minutes: i64,
    pub wallet_cents: i64,
    pub vat_cents: i64,
    pub price_per_minute: &'a str,
    pub vat_rate: &'a str,
    pub receipt_id: &'a str,
}

pub async fn record_bill_on(
    conn: &mut Conn<'_>,
    ride_id: &str,
    bill: &RideBill<'_>,
) -> Result<(), sqlx::Error> {
    conn_run!(conn, |c| {
        sqlx::query(
            "update rides set billed_minutes = $1, amount_cents = $2, trial_minutes = $3, \
             pack_minutes = $4, wallet_cents = $5, vat_cents = $6, price_per_minute = $7, \
             receipt_id = $8, vat_rate = $9 where id = $10",
        )
        .bind(bill.billed_minutes)
        .bind(bill.amount_cents)
        .bind(bill.trial_minutes)
        .bind(bill.pack_minutes)
        .bind(bill.wallet_cents)
        .bind(bill.vat_cents)
        .bind(bill.price_per_minute)
        .bind(bill.receipt_id)
        .bind(bill.vat_rate)
        .bind(ride_id)
        .execute(&mut *c)
        .await
        .map(|_| ())
    })
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
    db_run!(db, |pool| {
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
    db_run!(db, |pool| sqlx::query(
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
    db_run!(db, |pool| sqlx::query(
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
