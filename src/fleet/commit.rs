//! The telemetry group commit's SQL: the points of many requests, each scooter's newest
//! position, and the battery-swap tasks they call for, in one transaction.
//!
//! On PostgreSQL that is a few multi-row statements. On SQLite the rows are written on the
//! writer connection's own handle ([`crate::db::raw`]), one prepared statement run row by
//! row: the group costs one hand-off to SQLite's thread instead of one per statement, and
//! no statement is prepared anew for each group size.

use std::collections::HashMap;

use rusqlite::{params, TransactionBehavior};
use sqlx::{PgPool, SqlitePool};

use super::store::INSERT_POINT;
use super::Reading;
use crate::db::{raw, Conn, Db};
use crate::dispatch::joined::Joined;

/// One request's points, as the group-commit writer stores them.
#[derive(Debug)]
pub struct Points<'a> {
    pub scooter_id: &'a str,
    pub points: &'a [Reading],
    pub received_at_ms: i64,
}

/// Stores the points of several requests in one transaction. Duplicates (same scooter, same
/// `recorded_at`) are dropped; each scooter's row takes its newest point only if it is newer
/// than the one it has (`newest`, from [`newest_points`] of `groups`). The battery-swap
/// tasks that the points call for (`tasks`) are created in the same transaction.
pub async fn commit_points(
    db: &Db,
    groups: &[Points<'_>],
    newest: &[(&str, &Reading)],
    tasks: Option<&mut Joined>,
) -> Result<(), sqlx::Error> {
    match db {
        Db::Sqlite { write, .. } => on_sqlite(write, groups, newest, tasks).await,
        Db::Postgres(pool) => on_postgres(pool, groups, newest, tasks).await,
    }
}

/// The newest point of each scooter across the groups (a scooter may send twice).
pub fn newest_points<'a>(groups: &[Points<'a>]) -> Vec<(&'a str, &'a Reading)> {
    let mut newest: HashMap<&str, &Reading> = HashMap::new();
    for group in groups {
        for point in group.points {
            let slot = newest.entry(group.scooter_id).or_insert(point);
            if point.recorded_at_ms > slot.recorded_at_ms {
                *slot = point;
            }
        }
    }
    newest.into_iter().collect()
}

/// A scooter's row takes a point newer than the one it has (numbered parameters: SQLite's
/// own `?N`, as this statement only runs there).
const UPDATE_NEWEST_SQLITE: &str = "update scooters set lat = ?2, lon = ?3, range_km = ?4, \
     battery_pct = ?5, last_seen_ms = ?6 where scooter_id = ?1 and last_seen_ms < ?6";

/// A group without tasks is one transaction on the handle; with tasks, the rows are written
/// on the handle inside the transaction that dispatch's statements then join.
async fn on_sqlite(
    pool: &SqlitePool,
    groups: &[Points<'_>],
    newest: &[(&str, &Reading)],
    tasks: Option<&mut Joined>,
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    match tasks {
        None => {
            raw::on_handle(&mut conn, |c| {
                let tx = rusqlite::Transaction::new_unchecked(c, TransactionBehavior::Immediate)?;
                write_rows(&tx, groups, newest)?;
                tx.commit()
            })
            .await
        }
        Some(tasks) => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            raw::on_handle(&mut tx, |c| write_rows(c, groups, newest)).await?;
            tasks.store_on(&mut Conn::from(&mut *tx)).await?;
            tx.commit().await
        }
    }
}

fn write_rows(
    c: &rusqlite::Connection,
    groups: &[Points<'_>],
    newest: &[(&str, &Reading)],
) -> rusqlite::Result<()> {
    // `$1` … `$8` appear in order, so they bind by position here as well.
    let mut insert = c.prepare_cached(INSERT_POINT)?;
    for group in groups {
        for p in group.points {
            insert.execute(params![
                group.scooter_id,
                p.recorded_at_ms,
                group.received_at_ms,
                p.lat,
                p.lon,
                p.range_km,
                p.battery_pct,
                p.speed_kmh,
            ])?;
        }
    }
    let mut update = c.prepare_cached(UPDATE_NEWEST_SQLITE)?;
    for (scooter_id, p) in newest {
        update.execute(params![
            scooter_id,
            p.lat,
            p.lon,
            p.range_km,
            p.battery_pct,
            p.recorded_at_ms,
        ])?;
    }
    Ok(())
}

/// Rows per multi-row insert: 8 parameters each stays far below the engine's limit.
const POINTS_PER_STATEMENT: usize = 1000;
/// Scooters per multi-row update: 6 parameters each.
const SCOOTERS_PER_STATEMENT: usize = 1000;

async fn on_postgres(
    pool: &PgPool,
    groups: &[Points<'_>],
    newest: &[(&str, &Reading)],
    tasks: Option<&mut Joined>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(&str, &Reading, i64)> = groups
        .iter()
        .flat_map(|g| g.points.iter().map(|p| (g.scooter_id, p, g.received_at_ms)))
        .collect();
    let mut tx = pool.begin().await?;
    // Many rows per statement: one round trip per thousand points, not per point.
    for chunk in rows.chunks(POINTS_PER_STATEMENT) {
        let mut insert = sqlx::QueryBuilder::new(
            "insert into telemetry (scooter_id, recorded_at_ms, received_at_ms, \
             lat, lon, range_km, battery_pct, speed_kmh) ",
        );
        insert.push_values(chunk, |mut row, (scooter_id, p, received_at_ms)| {
            row.push_bind(*scooter_id)
                .push_bind(p.recorded_at_ms)
                .push_bind(*received_at_ms)
                .push_bind(p.lat)
                .push_bind(p.lon)
                .push_bind(p.range_km)
                .push_bind(p.battery_pct)
                .push_bind(p.speed_kmh);
        });
        insert.push(" on conflict (scooter_id, recorded_at_ms) do nothing");
        insert.build().execute(&mut *tx).await?;
    }
    // Each scooter's row takes its newest point, one statement for many scooters.
    for chunk in newest.chunks(SCOOTERS_PER_STATEMENT) {
        let mut update = sqlx::QueryBuilder::new(
            "with newest (scooter_id, lat, lon, range_km, battery_pct, last_seen_ms) as (",
        );
        update.push_values(chunk, |mut row, (scooter_id, p)| {
            row.push_bind(*scooter_id)
                .push_bind(p.lat)
                .push_bind(p.lon)
                .push_bind(p.range_km)
                .push_bind(p.battery_pct)
                .push_bind(p.recorded_at_ms);
        });
        update.push(
            ") update scooters set lat = newest.lat, lon = newest.lon, \
             range_km = newest.range_km, battery_pct = newest.battery_pct, \
             last_seen_ms = newest.last_seen_ms from newest \
             where scooters.scooter_id = newest.scooter_id \
             and scooters.last_seen_ms < newest.last_seen_ms",
        );
        update.build().execute(&mut *tx).await?;
    }
    if let Some(tasks) = tasks {
        tasks.store_on(&mut Conn::from(&mut *tx)).await?;
    }
    tx.commit().await
}
