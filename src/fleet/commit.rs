//! The telemetry group commit's SQL: the points of many requests, each scooter's newest
//! position, and the battery-swap tasks they call for, in one transaction.
//!
//! On PostgreSQL that is one statement for the points and the scooters (array parameters,
//! whatever the group's size), its own transaction, or followed by dispatch's statements in
//! one when there are tasks. On SQLite the rows are written on the
//! writer connection's own handle ([`crate::db::raw`]), one prepared statement run row by
//! row: the group costs one hand-off to SQLite's thread instead of one per statement, and
//! no statement is prepared anew for each group size.

use std::collections::HashMap;

use rusqlite::params;
use sqlx::{PgPool, SqlitePool};

use super::store::INSERT_POINT;
use super::Reading;
use crate::db::{is_unique_violation, raw, Conn, Db};
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
/// `novelty` lets PostgreSQL store points that cannot be stored yet the cheaper way; SQLite's
/// writer takes no notice and always inserts with `on conflict do nothing`.
pub async fn commit_points(
    db: &Db,
    groups: &[Points<'_>],
    newest: &[(&str, &Reading)],
    tasks: Option<&mut Joined>,
    novelty: Novelty,
) -> Result<(), sqlx::Error> {
    match db {
        Db::Sqlite { write, .. } => on_sqlite(write, groups, newest, tasks).await,
        Db::Postgres(pool) => on_postgres(pool, groups, newest, tasks, novelty).await,
    }
}

/// What the writer knows of a group's points against what is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Novelty {
    /// Every point is newer than the newest its scooter has in the live view, and no two
    /// share a scooter and a time: none can be stored yet, unless another server sharing
    /// the database stored it since (then it is found, and skipped, after all).
    New,
    /// Some points may be stored already: a repeat, or an older point sent again.
    MaybeStored,
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
            raw::transaction(&mut conn, |c| {
                write_rows(c, groups, newest).map_err(raw::into_sqlx)
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

/// The group's points and its scooters' newest positions, in one statement of constant text
/// (so it is prepared once per connection), whatever the group's size: each column is an
/// array parameter, `unnest` makes the rows. `$on_conflict` follows the insert: see
/// [`COMMIT_POINTS_POSTGRES`] and [`COMMIT_NEW_POINTS_POSTGRES`].
macro_rules! commit_points_postgres {
    ($on_conflict:literal) => {
        concat!(
            "with stored as (insert into telemetry \
             (scooter_id, recorded_at_ms, received_at_ms, lat, lon, range_km, battery_pct, \
             speed_kmh) \
             select * from unnest($1::text[], $2::int8[], $3::int8[], $4::float8[], \
             $5::float8[], $6::float8[], $7::float8[], $8::float8[])",
            $on_conflict,
            ") update scooters set lat = newest.lat, lon = newest.lon, \
             range_km = newest.range_km, battery_pct = newest.battery_pct, \
             last_seen_ms = newest.last_seen_ms \
             from unnest($9::text[], $10::float8[], $11::float8[], $12::float8[], \
             $13::float8[], $14::int8[]) \
             as newest (scooter_id, lat, lon, range_km, battery_pct, last_seen_ms) \
             where scooters.scooter_id = newest.scooter_id \
             and scooters.last_seen_ms < newest.last_seen_ms"
        )
    };
}

/// The group commit's statement for any points: one already stored is skipped.
const COMMIT_POINTS_POSTGRES: &str =
    commit_points_postgres!(" on conflict (scooter_id, recorded_at_ms) do nothing");

/// The group commit's statement for points none of which can be stored yet ([`Novelty::New`]):
/// a plain insert, whose key PostgreSQL checks in the same walk down the index that adds
/// it, where `on conflict` walks it twice (measured with pgbench: 59.6–68.7k rows/s with
/// `on conflict`, 88.9–92.2k without). A point stored after all fails the statement with a
/// unique violation, and the group is stored again with [`COMMIT_POINTS_POSTGRES`].
const COMMIT_NEW_POINTS_POSTGRES: &str = commit_points_postgres!("");

async fn on_postgres(
    pool: &PgPool,
    groups: &[Points<'_>],
    newest: &[(&str, &Reading)],
    tasks: Option<&mut Joined>,
    novelty: Novelty,
) -> Result<(), sqlx::Error> {
    let Some(tasks) = tasks else {
        // One statement is its own transaction: no `begin` and `commit` round trips.
        if novelty == Novelty::New {
            let stored = points_on_postgres(COMMIT_NEW_POINTS_POSTGRES, groups, newest)
                .execute(pool)
                .await;
            match stored {
                Err(err) if is_unique_violation(&err) => {
                    metrics::counter!("scootfleet_telemetry_new_points_found_stored_total")
                        .increment(1);
                }
                stored => return stored.map(drop),
            }
        }
        return points_on_postgres(COMMIT_POINTS_POSTGRES, groups, newest)
            .execute(pool)
            .await
            .map(drop);
    };
    // A failed statement would end the transaction with it: here the points are always
    // stored the way that skips those already stored.
    let mut tx = pool.begin().await?;
    points_on_postgres(COMMIT_POINTS_POSTGRES, groups, newest)
        .execute(&mut *tx)
        .await?;
    tasks.store_on(&mut Conn::from(&mut *tx)).await?;
    tx.commit().await
}

/// `sql` (one of the group commit's statements) with the group's points and its scooters'
/// newest positions bound as columns.
fn points_on_postgres<'q>(
    sql: &'q str,
    groups: &'q [Points<'q>],
    newest: &'q [(&'q str, &'q Reading)],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let points = || {
        groups
            .iter()
            .flat_map(|g| g.points.iter().map(move |p| (g, p)))
    };
    let column = |f: fn(&Reading) -> f64| points().map(|(_, p)| f(p)).collect::<Vec<f64>>();
    let newest_column =
        |f: fn(&Reading) -> f64| newest.iter().map(|(_, p)| f(p)).collect::<Vec<f64>>();
    sqlx::query(sql)
        .bind(points().map(|(g, _)| g.scooter_id).collect::<Vec<&str>>())
        .bind(
            points()
                .map(|(_, p)| p.recorded_at_ms)
                .collect::<Vec<i64>>(),
        )
        .bind(
            points()
                .map(|(g, _)| g.received_at_ms)
                .collect::<Vec<i64>>(),
        )
        .bind(column(|p| p.lat))
        .bind(column(|p| p.lon))
        .bind(column(|p| p.range_km))
        .bind(column(|p| p.battery_pct))
        .bind(
            points()
                .map(|(_, p)| p.speed_kmh)
                .collect::<Vec<Option<f64>>>(),
        )
        .bind(newest.iter().map(|(id, _)| *id).collect::<Vec<&str>>())
        .bind(newest_column(|p| p.lat))
        .bind(newest_column(|p| p.lon))
        .bind(newest_column(|p| p.range_km))
        .bind(newest_column(|p| p.battery_pct))
        .bind(
            newest
                .iter()
                .map(|(_, p)| p.recorded_at_ms)
                .collect::<Vec<i64>>(),
        )
}
