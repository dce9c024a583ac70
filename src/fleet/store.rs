//! The fleet in the database: scooters, their state changes, and telemetry history.

use std::sync::LazyLock;

use futures_util::TryStreamExt;

use super::{Event, Reading, Reason, ScooterState};
use crate::db::{is_unique_violation, raw, Conn, Db};
use crate::error::Error;
use crate::{conn_run, db_run, db_write};

/// A scooter being registered; its first reading is its registration.
#[derive(Debug)]
pub struct NewScooter<'a> {
    pub scooter_id: &'a str,
    pub device_token_hash: &'a str,
    pub reading: Reading,
}

pub(super) const INSERT_POINT: &str = "insert into telemetry \
     (scooter_id, recorded_at_ms, received_at_ms, lat, lon, range_km, battery_pct, speed_kmh) \
     values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (scooter_id, recorded_at_ms) do nothing";

const INSERT_EVENT: &str = "insert into scooter_events \
     (scooter_id, event_type, from_state, to_state, to_reason, at_ms) values ($1, $2, $3, $4, $5, $6)";

/// Registers a scooter, available, with its registration as its first point and event.
/// `Ok(false)` when the id is taken.
pub async fn insert_scooter(db: &Db, new: &NewScooter<'_>) -> Result<bool, Error> {
    let r = &new.reading;
    let at = r.recorded_at_ms;
    let available = ScooterState::Available.as_str();
    // An async block, so that `?` stops here and the unique violation can be recognised.
    let result = db_write!(db, |pool| {
        async {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "insert into scooters (scooter_id, device_token_hash, state, state_reason, state_version, \
             lat, lon, range_km, battery_pct, last_seen_ms, registered_at_ms) \
             values ($1, $2, $3, null, 0, $4, $5, $6, $7, $8, $8)",
        )
        .bind(new.scooter_id)
        .bind(new.device_token_hash)
        .bind(available)
        .bind(r.lat)
        .bind(r.lon)
        .bind(r.range_km)
        .bind(r.battery_pct)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        log_event_on(
            &mut Conn::from(&mut *tx),
            new.scooter_id,
            Event::AgencyDropOff,
            None,
            ScooterState::Available,
            at,
        )
        .await?;
        sqlx::query(INSERT_POINT)
            .bind(new.scooter_id)
            .bind(at)
            .bind(at)
            .bind(r.lat)
            .bind(r.lon)
            .bind(r.range_km)
            .bind(r.battery_pct)
            .bind(r.speed_kmh)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
    .await
    });
    match result {
        Ok(()) => Ok(true),
        Err(err) if is_unique_violation(&err) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Registers many scooters in one transaction, skipping ids already taken; says which of
/// `scooters` were created.
pub async fn insert_scooters(
    db: &Db,
    scooters: &[(&str, String, Reading)],
) -> Result<Vec<bool>, sqlx::Error> {
    let available = ScooterState::Available.as_str();
    db_write!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut created = Vec::with_capacity(scooters.len());
        for (scooter_id, token_hash, r) in scooters {
            let at = r.recorded_at_ms;
            let inserted = sqlx::query(
                "insert into scooters (scooter_id, device_token_hash, state, state_reason, state_version, \
                 lat, lon, range_km, battery_pct, last_seen_ms, registered_at_ms) \
                 values ($1, $2, $3, null, 0, $4, $5, $6, $7, $8, $8) on conflict (scooter_id) do nothing",
            )
            .bind(scooter_id)
            .bind(token_hash)
            .bind(available)
            .bind(r.lat)
            .bind(r.lon)
            .bind(r.range_km)
            .bind(r.battery_pct)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                sqlx::query(INSERT_EVENT)
                    .bind(scooter_id)
                    .bind(Event::AgencyDropOff.as_str())
                    .bind(None::<&str>)
                    .bind(available)
                    .bind(None::<&str>)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(INSERT_POINT)
                    .bind(scooter_id)
                    .bind(at)
                    .bind(at)
                    .bind(r.lat)
                    .bind(r.lon)
                    .bind(r.range_km)
                    .bind(r.battery_pct)
                    .bind(r.speed_kmh)
                    .execute(&mut *tx)
                    .await?;
            }
            created.push(inserted);
        }
        tx.commit().await?;
        Ok(created)
    })
}

/// A scooter as stored, for rebuilding the live index: borrowed from its row, so that
/// nothing is copied that the index does not keep.
#[derive(Debug)]
pub struct ScooterRow<'r> {
    pub scooter_id: &'r str,
    /// The SHA-256 of the device token (stored as hex, read as bytes); `None` when the
    /// stored text is not hex.
    pub device_token_hash: Option<&'r [u8]>,
    pub state: &'r str,
    pub state_reason: Option<&'r str>,
    pub state_version: i64,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub battery_pct: f64,
    pub last_seen_ms: i64,
}

/// The newest event's id (0 when none): where following other servers starts, and how far
/// [`super::Fleet::adopt_new`] has looked for new scooters.
pub async fn last_event_id(db: &Db) -> Result<i64, sqlx::Error> {
    db_run!(db, |pool| {
        sqlx::query_scalar("select cast(coalesce(max(id), 0) as bigint) from scooter_events")
            .fetch_one(pool)
            .await
    })
}

/// One recorded event and the state its scooter is in now.
#[derive(Debug, sqlx::FromRow)]
pub struct StateSince {
    pub event_id: i64,
    pub scooter_id: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub state_version: i64,
}

/// The events recorded after `after_id` (in id order, at most `limit`), each with its
/// scooter's current state and version.
pub async fn states_since(
    db: &Db,
    after_id: i64,
    limit: i64,
) -> Result<Vec<StateSince>, sqlx::Error> {
    db_run!(db, |pool| {
        sqlx::query_as(
            "select e.id as event_id, s.scooter_id, s.state, s.state_reason, s.state_version \
             from scooter_events e join scooters s on s.scooter_id = e.scooter_id \
             where e.id > $1 order by e.id limit $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(pool)
        .await
    })
}

/// How many scooters are registered.
pub async fn count_scooters(db: &Db) -> Result<i64, sqlx::Error> {
    db_run!(db, |pool| {
        sqlx::query_scalar("select count(*) from scooters")
            .fetch_one(pool)
            .await
    })
}

/// The token hash is decoded from hex by the database (`unhex`, SQLite 3.41 and later;
/// `decode` on PostgreSQL), not row by row in Rust.
const SELECT_SCOOTERS_SQLITE: &str = "select scooter_id, unhex(device_token_hash), state, \
     state_reason, state_version, lat, lon, range_km, battery_pct, last_seen_ms from scooters";
const SELECT_SCOOTERS_POSTGRES: &str = "select scooter_id, decode(device_token_hash, 'hex'), \
     state, state_reason, state_version, lat, lon, range_km, battery_pct, last_seen_ms \
     from scooters";

/// Every scooter, all states, handed to `take` as soon as it is read: a million rows are
/// never all held at once, and what `take` does overlaps the database's work. Columns are
/// read by position and borrowed from the row; SQLite's straight from its own statement
/// ([`super::scan`]). (Reading SQLite in concurrent parts by
/// `rowid` was measured slower on two cores: the parts' threads compete with `take`.)
pub async fn each_scooter<E: From<sqlx::Error>>(
    db: &Db,
    take: impl FnMut(ScooterRow<'_>) -> Result<(), E>,
) -> Result<(), E> {
    match db {
        Db::Sqlite { read, .. } => {
            super::scan::each_scooter(read, SELECT_SCOOTERS_SQLITE, take).await
        }
        Db::Postgres(_) => each_scooter_through_sqlx(db, take).await,
    }
}

/// The scooters registered (or dropped off again) by events after `after_id` up to
/// `through_id`, handed to `take` as [`each_scooter`] does: what
/// [`super::Fleet::adopt_new`] reads instead of the whole fleet.
pub async fn each_scooter_dropped_off<E: From<sqlx::Error>>(
    db: &Db,
    after_id: i64,
    through_id: i64,
    mut take: impl FnMut(ScooterRow<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let select = match db {
        Db::Sqlite { .. } => SELECT_SCOOTERS_SQLITE,
        Db::Postgres(_) => SELECT_SCOOTERS_POSTGRES,
    };
    let select = format!(
        "{select} where scooter_id in (select scooter_id from scooter_events \
         where id > $1 and id <= $2 and event_type = $3)"
    );
    db_run!(db, |pool| {
        let mut rows = sqlx::query(&select)
            .bind(after_id)
            .bind(through_id)
            .bind(Event::AgencyDropOff.as_str())
            .fetch(pool);
        while let Some(row) = rows.try_next().await? {
            take(scooter_row(&row)?)?;
        }
        Ok(())
    })
}

/// [`each_scooter`] through sqlx, which PostgreSQL's rows come by (and SQLite's did, before
/// the direct read: a test checks that both ways read the same).
pub(super) async fn each_scooter_through_sqlx<E: From<sqlx::Error>>(
    db: &Db,
    mut take: impl FnMut(ScooterRow<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let select = match db {
        Db::Sqlite { .. } => SELECT_SCOOTERS_SQLITE,
        Db::Postgres(_) => SELECT_SCOOTERS_POSTGRES,
    };
    db_run!(db, |pool| {
        let mut rows = sqlx::query(select).fetch(pool);
        while let Some(row) = rows.try_next().await? {
            take(scooter_row(&row)?)?;
        }
        Ok(())
    })
}

/// A row of [`SELECT_SCOOTERS_SQLITE`] or [`SELECT_SCOOTERS_POSTGRES`], borrowed.
fn scooter_row<'r, R: sqlx::Row>(row: &'r R) -> Result<ScooterRow<'r>, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<&'r [u8]>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<&'r str>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ScooterRow {
        scooter_id: row.try_get(0)?,
        device_token_hash: row.try_get(1)?,
        state: row.try_get(2)?,
        state_reason: row.try_get(3)?,
        state_version: row.try_get(4)?,
        lat: row.try_get(5)?,
        lon: row.try_get(6)?,
        range_km: row.try_get(7)?,
        battery_pct: row.try_get(8)?,
        last_seen_ms: row.try_get(9)?,
    })
}

/// Moves a scooter from `from` to `to` and records `event`, only if it is still in `from`:
/// the new state version, or `None` when someone else changed it first.
pub async fn change_state(
    db: &Db,
    scooter_id: &str,
    from: ScooterState,
    to: ScooterState,
    event: Event,
    at_ms: i64,
) -> Result<Option<i64>, Error> {
    let versions = change_states(db, &[scooter_id], from, to, event, at_ms).await?;
    Ok(versions.into_iter().next().flatten())
}

/// [`change_state`] for each of `scooter_ids`, all leaving `from` on `event`, in one
/// transaction: a sweep over the fleet commits (and writes to the log) once for many
/// scooters. Returns each scooter's new version, or `None` where it was not in `from`.
pub async fn change_states(
    db: &Db,
    scooter_ids: &[impl AsRef<str>],
    from: ScooterState,
    to: ScooterState,
    event: Event,
    at_ms: i64,
) -> Result<Vec<Option<i64>>, Error> {
    let versions = crate::db_transaction!(db, |tx| {
        let mut versions = Vec::with_capacity(scooter_ids.len());
        for scooter_id in scooter_ids {
            versions.push(
                change_state_on(
                    &mut Conn::from(&mut *tx),
                    scooter_id.as_ref(),
                    from,
                    to,
                    event,
                    at_ms,
                )
                .await?,
            );
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(versions)
    })?;
    Ok(versions)
}

/// [`change_state`] on a connection of a transaction another domain opened (a ride starting
/// or ending), so the scooter's state commits with that domain's own rows.
pub async fn change_state_on(
    conn: &mut Conn<'_>,
    scooter_id: &str,
    from: ScooterState,
    to: ScooterState,
    event: Event,
    at_ms: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let from_reason = from.reason().map(Reason::as_str).unwrap_or("");
    let to_reason = to.reason().map(Reason::as_str);
    let sql = match conn {
        Conn::Sqlite(_) => CHANGE_STATE_SQLITE.as_str(),
        Conn::Postgres(_) => CHANGE_STATE_POSTGRES.as_str(),
    };
    let versions: Vec<i64> = conn_run!(conn, |c| {
        sqlx::query_scalar(sql)
            .bind(to.as_str())
            .bind(to_reason)
            .bind(scooter_id)
            .bind(from.as_str())
            .bind(from_reason)
            .bind(event.as_str())
            .bind(at_ms)
            // Every row, so that SQLite runs the script's second statement too.
            .fetch_all(&mut *c)
            .await
    })?;
    Ok(versions.first().copied())
}

/// [`change_state_on`] on a SQLite handle, inside a transaction run by
/// [`crate::db::raw::transaction`]: the update, then its log row when it changed one.
pub fn change_state_raw(
    c: &rusqlite::Connection,
    scooter_id: &str,
    from: ScooterState,
    to: ScooterState,
    event: Event,
    at_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    let from_reason = from.reason().map(Reason::as_str).unwrap_or("");
    let to_reason = to.reason().map(Reason::as_str);
    let args: [&dyn rusqlite::ToSql; 7] = [
        &to.as_str(),
        &to_reason,
        &scooter_id,
        &from.as_str(),
        &from_reason,
        &event.as_str(),
        &at_ms,
    ];
    let version = raw::query_row(c, UPDATE_STATE, &args, |row| row.get(0))?;
    if version.is_some() {
        raw::execute(c, LOG_CHANGE, &args)?;
    }
    Ok(version)
}

/// The conditional state change: `$1` to state, `$2` to reason, `$3` scooter, `$4` from
/// state, `$5` from reason (`''` for none); returns the new state version.
pub(crate) const UPDATE_STATE: &str = "update scooters set state = $1, state_reason = $2, \
     state_version = state_version + 1 \
     where scooter_id = $3 and state = $4 and coalesce(state_reason, '') = $5 \
     returning state_version";
/// Its event-log row, with `$6` event and `$7` time: a `select` a caller may follow with
/// `from` (the rows the change returned) or `where`.
pub(crate) const LOG_CHANGE: &str = "insert into scooter_events \
     (scooter_id, event_type, from_state, to_state, to_reason, at_ms) \
     select $3, $6, $4, $1, $2, $7";

/// [`UPDATE_STATE`] and [`LOG_CHANGE`] in one round trip. PostgreSQL chains them in a
/// data-modifying `with`; SQLite has none, so it runs both statements as one script on its
/// connection's thread, logging only when the update changed a row (`changes()`).
static CHANGE_STATE_POSTGRES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "with changed as ({UPDATE_STATE}), logged as ({LOG_CHANGE} from changed) \
         select state_version from changed"
    )
});
static CHANGE_STATE_SQLITE: LazyLock<String> =
    LazyLock::new(|| format!("{UPDATE_STATE}; {LOG_CHANGE} where changes() = 1"));

/// Appends `event` (from `from` to `to`) to the scooter's event log on `conn`.
async fn log_event_on(
    conn: &mut Conn<'_>,
    scooter_id: &str,
    event: Event,
    from: Option<ScooterState>,
    to: ScooterState,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    conn_run!(conn, |c| sqlx::query(INSERT_EVENT)
        .bind(scooter_id)
        .bind(event.as_str())
        .bind(from.map(ScooterState::as_str))
        .bind(to.as_str())
        .bind(to.reason().map(Reason::as_str))
        .bind(at_ms)
        .execute(&mut *c)
        .await
        .map(|_| ()))
}

/// Logs an event that leaves the scooter in `state` (e.g. `battery_charged` while available).
pub async fn record_event(
    db: &Db,
    scooter_id: &str,
    event: Event,
    state: ScooterState,
    at_ms: i64,
) -> Result<(), Error> {
    db_write!(db, |pool| {
        let mut conn = pool.acquire().await?;
        log_event_on(
            &mut Conn::from(&mut *conn),
            scooter_id,
            event,
            Some(state),
            state,
            at_ms,
        )
        .await
    })?;
    Ok(())
}

/// A scooter's stored state and its version.
pub async fn state_of(db: &Db, scooter_id: &str) -> Result<Option<(ScooterState, i64)>, Error> {
    let row: Option<(String, Option<String>, i64)> = db_run!(db, |pool| {
        sqlx::query_as(
            "select state, state_reason, state_version from scooters where scooter_id = $1",
        )
        .bind(scooter_id)
        .fetch_optional(pool)
        .await
    })?;
    row.map(|(state, reason, version)| {
        ScooterState::parse(&state, reason.as_deref())
            .map(|state| (state, version))
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown stored state {state}")))
    })
    .transpose()
}

/// How many points are stored for a scooter (for operators and tests).
pub async fn count_points(db: &Db, scooter_id: &str) -> Result<i64, Error> {
    Ok(db_run!(db, |pool| {
        sqlx::query_scalar("select count(*) from telemetry where scooter_id = $1")
            .bind(scooter_id)
            .fetch_one(pool)
            .await
    })?)
}

/// Deletes telemetry recorded before `cutoff_ms`; returns how many points went.
///
/// Scooter by scooter, [`DELETE_SCOOTERS`] at a time in id order, each scooter's old points
/// found through the primary key (scooter, time) from its start: the points kept are never
/// read, and no index of every point by time is kept up for this. In slices of
/// [`DELETE_SLICE`] points, each its own statement, so a large backlog never holds the
/// database's writer (on SQLite, the one telemetry, rides and dispatch share) for long.
pub async fn delete_points_before(db: &Db, cutoff_ms: i64) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    let mut after = String::new();
    loop {
        let scooters: Vec<String> = db_run!(db, |pool| {
            sqlx::query_scalar(
                "select scooter_id from scooters where scooter_id > $1 \
                 order by scooter_id limit $2",
            )
            .bind(&after)
            .bind(DELETE_SCOOTERS)
            .fetch_all(pool)
            .await
        })?;
        let Some(last) = scooters.last() else {
            return Ok(deleted);
        };
        loop {
            let slice = delete_slice(db, &scooters, cutoff_ms).await?;
            deleted += slice;
            if slice < DELETE_SLICE as u64 {
                break;
            }
        }
        after.clone_from(last);
    }
}

/// Deletes up to [`DELETE_SLICE`] of `scooters`' points recorded before `cutoff_ms`. The ids
/// go as one parameter, so the statement's text stays the same: an array on PostgreSQL, a
/// JSON array on SQLite; on each, every id is looked up in the primary key.
async fn delete_slice(db: &Db, scooters: &[String], cutoff_ms: i64) -> Result<u64, sqlx::Error> {
    let done = match db {
        Db::Sqlite { write, .. } => {
            let ids = serde_json::to_string(scooters)
                .map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
            sqlx::query(
                "delete from telemetry where (scooter_id, recorded_at_ms) in \
                 (select scooter_id, recorded_at_ms from telemetry \
                  where scooter_id in (select value from json_each($1)) \
                  and recorded_at_ms < $2 limit $3)",
            )
            .bind(ids)
            .bind(cutoff_ms)
            .bind(DELETE_SLICE)
            .execute(write)
            .await?
            .rows_affected()
        }
        Db::Postgres(pool) => sqlx::query(
            "delete from telemetry where (scooter_id, recorded_at_ms) in \
             (select scooter_id, recorded_at_ms from telemetry \
              where scooter_id = any($1) and recorded_at_ms < $2 limit $3)",
        )
        .bind(scooters)
        .bind(cutoff_ms)
        .bind(DELETE_SLICE)
        .execute(pool)
        .await?
        .rows_affected(),
    };
    Ok(done)
}

/// Points deleted per statement by [`delete_points_before`].
const DELETE_SLICE: i64 = 10_000;

/// Scooters whose old points [`delete_points_before`] looks up together.
const DELETE_SCOOTERS: i64 = 500;
