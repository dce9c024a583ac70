//! Crews in the database.

use chrono::{DateTime, Utc};

use super::CrewState;
use crate::clock::to_millis;
use crate::db::Db;
use crate::{db_run, db_write};

#[derive(Debug, sqlx::FromRow)]
struct CrewRow {
    crew_id: String,
    lat: Option<f64>,
    lon: Option<f64>,
    available: bool,
    batteries_aboard: i64,
    tasks_held: i64,
}

impl From<CrewRow> for CrewState {
    fn from(row: CrewRow) -> Self {
        CrewState {
            crew_id: row.crew_id,
            position: row.lat.zip(row.lon),
            available: row.available,
            batteries_aboard: row.batteries_aboard,
            tasks_held: row.tasks_held,
        }
    }
}

const COLUMNS: &str = "crew_id, lat, lon, available, batteries_aboard, tasks_held";

pub async fn all(db: &Db) -> Result<Vec<CrewState>, sqlx::Error> {
    let sql = format!("select {COLUMNS} from crews");
    let rows: Vec<CrewRow> = db_run!(db, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(CrewState::from).collect())
}

pub async fn get(db: &Db, crew_id: &str) -> Result<Option<CrewState>, sqlx::Error> {
    let sql = format!("select {COLUMNS} from crews where crew_id = $1");
    let row: Option<CrewRow> = db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(crew_id)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(CrewState::from))
}

/// True when `crew_id` is a crew member's account.
pub async fn is_crew_account(db: &Db, crew_id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> = db_run!(db, |pool| sqlx::query_scalar(
        "select id from accounts where id = $1 and role = 'crew'"
    )
    .bind(crew_id)
    .fetch_optional(pool)
    .await)?;
    Ok(found.is_some())
}

/// A change to one crew's row; the row is created on first use with `default_batteries`.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    Position { lat: f64, lon: f64 },
    Available(bool),
    Batteries(i64),
}

/// Applies `change` and returns the crew as it now is.
pub async fn apply(
    db: &Db,
    crew_id: &str,
    change: Change,
    default_batteries: i64,
    now: DateTime<Utc>,
) -> Result<CrewState, sqlx::Error> {
    let (set, lat, lon, available, batteries) = match change {
        Change::Position { lat, lon } => (
            "lat = excluded.lat, lon = excluded.lon, position_at_ms = excluded.position_at_ms",
            Some(lat),
            Some(lon),
            false,
            default_batteries,
        ),
        Change::Available(available) => (
            "available = excluded.available",
            None,
            None,
            available,
            default_batteries,
        ),
        Change::Batteries(batteries) => (
            "batteries_aboard = excluded.batteries_aboard",
            None,
            None,
            false,
            batteries,
        ),
    };
    let sql = format!(
        "insert into crews (crew_id, lat, lon, position_at_ms, available, batteries_aboard, tasks_held, updated_at_ms) \
         values ($1, $2, $3, $4, $5, $6, 0, $7) \
         on conflict (crew_id) do update set {set}, updated_at_ms = excluded.updated_at_ms \
         returning {COLUMNS}"
    );
    let now = to_millis(now);
    let position_at = lat.map(|_| now);
    let row: CrewRow = db_write!(db, |pool| sqlx::query_as(&sql)
        .bind(crew_id)
        .bind(lat)
        .bind(lon)
        .bind(position_at)
        .bind(available)
        .bind(batteries)
        .bind(now)
        .fetch_one(pool)
        .await)?;
    Ok(row.into())
}
