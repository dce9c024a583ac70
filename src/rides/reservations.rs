//! Reservations: a rider holds a scooter free of charge for a while before unlocking it.
//! One active reservation per rider and per scooter, enforced by the database.

use crate::db::{raw, Conn, Db};
use crate::error::Error;
use crate::{conn_run, db_run};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ReservationRow {
    pub id: String,
    pub rider_id: String,
    pub scooter_id: String,
    pub status: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub closed_at_ms: Option<i64>,
}

const COLUMNS: &str =
    "id, rider_id, scooter_id, status, created_at_ms, expires_at_ms, closed_at_ms";

pub async fn reservation(db: &Db, id: &str) -> Result<Option<ReservationRow>, Error> {
    let sql = format!("select {COLUMNS} from reservations where id = $1");
    Ok(db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await)?)
}

pub async fn active_for_scooter(
    db: &Db,
    scooter_id: &str,
) -> Result<Option<ReservationRow>, Error> {
    let sql =
        format!("select {COLUMNS} from reservations where scooter_id = $1 and status = 'active'");
    Ok(db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(scooter_id)
        .fetch_optional(pool)
        .await)?)
}

pub async fn active_for_rider(db: &Db, rider_id: &str) -> Result<Option<ReservationRow>, Error> {
    let sql =
        format!("select {COLUMNS} from reservations where rider_id = $1 and status = 'active'");
    Ok(db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(rider_id)
        .fetch_optional(pool)
        .await)?)
}

/// Inserts an active reservation; a unique violation means the rider or the scooter has one.
pub async fn insert_on(conn: &mut Conn<'_>, row: &ReservationRow) -> Result<(), sqlx::Error> {
    conn_run!(conn, |c| {
        sqlx::query(
            "insert into reservations (id, rider_id, scooter_id, status, created_at_ms, expires_at_ms) \
             values ($1, $2, $3, 'active', $4, $5)",
        )
        .bind(&row.id)
        .bind(&row.rider_id)
        .bind(&row.scooter_id)
        .bind(row.created_at_ms)
        .bind(row.expires_at_ms)
        .execute(&mut *c)
        .await
        .map(|_| ())
    })
}

/// Closes an active reservation with `status` (`cancelled`, `expired`, `converted`);
/// false when it was no longer active.
pub async fn close_on(
    conn: &mut Conn<'_>,
    id: &str,
    status: &str,
    at_ms: i64,
) -> Result<bool, sqlx::Error> {
    conn_run!(conn, |c| {
        sqlx::query(CLOSE)
            .bind(status)
            .bind(at_ms)
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|done| done.rows_affected() == 1)
    })
}

/// [`close_on`] on a SQLite handle.
pub fn close_raw(
    c: &rusqlite::Connection,
    id: &str,
    status: &str,
    at_ms: i64,
) -> rusqlite::Result<bool> {
    Ok(raw::execute(c, CLOSE, &[&status, &at_ms, &id])? == 1)
}

/// Closes an active reservation: `$1` status, `$2` time, `$3` reservation.
const CLOSE: &str =
    "update reservations set status = $1, closed_at_ms = $2 where id = $3 and status = 'active'";

/// Active reservations whose time is up.
pub async fn due(db: &Db, now_ms: i64) -> Result<Vec<ReservationRow>, Error> {
    let sql = format!(
        "select {COLUMNS} from reservations where status = 'active' and expires_at_ms <= $1 \
         order by expires_at_ms limit 500"
    );
    Ok(db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(now_ms)
        .fetch_all(pool)
        .await)?)
}
