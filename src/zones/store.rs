//! Zone sets and operating hours in the database: every version kept, the latest in force.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::hours::{OperatingHours, TimeOfDay};
use super::{default_feature_collection, parse_zones, ZoneSet};
use crate::clock::{from_millis, to_millis};
use crate::db::{insert_next_version, Db};
use crate::db_run;
use crate::db_write;
use crate::error::Error;

/// A stored zone set, as listed.
#[derive(Debug, sqlx::FromRow)]
pub struct ZoneSetVersion {
    pub version: i64,
    pub created_at_ms: i64,
    pub created_by: Option<String>,
    pub feature_count: i64,
}

/// A stored zone set with its GeoJSON text.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredZoneSet {
    pub version: i64,
    pub created_at_ms: i64,
    pub created_by: Option<String>,
    pub geojson: String,
}

/// Stores `geojson` as the next version and returns its number.
///
/// The number is taken inside the insert; when two uploads race for it, the loser gets a
/// unique violation and tries the next one, so no upload is lost or numbered twice.
pub async fn insert_zone_set(
    db: &Db,
    geojson: &str,
    feature_count: usize,
    created_by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64, Error> {
    let feature_count = i64::try_from(feature_count).context("feature count")?;
    insert_next_version("zone set", || async {
        db_write!(db, |pool| {
            sqlx::query_scalar(
            "insert into zone_sets (version, created_at_ms, created_by, feature_count, geojson) \
             select coalesce(max(version), 0) + 1, $1, $2, $3, $4 from zone_sets \
             returning version",
        )
        .bind(to_millis(now))
        .bind(created_by)
        .bind(feature_count)
        .bind(geojson)
        .fetch_one(pool)
        .await
        })
    })
    .await
}

/// Every stored zone set, newest first.
pub async fn zone_set_versions(db: &Db) -> Result<Vec<ZoneSetVersion>, Error> {
    Ok(db_run!(db, |pool| {
        sqlx::query_as(
            "select version, created_at_ms, created_by, feature_count from zone_sets \
             order by version desc",
        )
        .fetch_all(pool)
        .await
    })?)
}

/// One stored zone set, by version.
pub async fn zone_set_version(db: &Db, version: i64) -> Result<Option<StoredZoneSet>, Error> {
    Ok(db_run!(db, |pool| {
        sqlx::query_as(
            "select version, created_at_ms, created_by, geojson from zone_sets where version = $1",
        )
        .bind(version)
        .fetch_optional(pool)
        .await
    })?)
}

async fn latest_zone_set(db: &Db) -> Result<Option<StoredZoneSet>, sqlx::Error> {
    db_run!(db, |pool| {
        sqlx::query_as(
            "select version, created_at_ms, created_by, geojson from zone_sets \
             order by version desc limit 1",
        )
        .fetch_optional(pool)
        .await
    })
}

/// The zone set in force: the latest stored version, or the built-in defaults stored as
/// version 1 when none was ever stored (several servers starting together store it once).
pub async fn load_zone_set(db: &Db, now: DateTime<Utc>) -> anyhow::Result<ZoneSet> {
    let stored = match latest_zone_set(db).await? {
        Some(stored) => stored,
        None => {
            let defaults = default_feature_collection().context("the built-in zones")?;
            let count = i64::try_from(defaults["features"].as_array().map_or(0, Vec::len))?;
            let text = serde_json::to_string(&defaults)?;
            db_write!(db, |pool| {
                sqlx::query(
                    "insert into zone_sets (version, created_at_ms, created_by, feature_count, geojson) \
                     values (1, $1, null, $2, $3) on conflict (version) do nothing",
                )
                .bind(to_millis(now))
                .bind(count)
                .bind(&text)
                .execute(pool)
                .await
                .map(|_| ())
            })?;
            latest_zone_set(db)
                .await?
                .context("the default zone set was just stored")?
        }
    };
    let collection: serde_json::Value = serde_json::from_str(&stored.geojson)
        .with_context(|| format!("zone set version {} is not JSON", stored.version))?;
    let zones = parse_zones(&collection)
        .with_context(|| format!("zone set version {} is no longer valid", stored.version))?;
    Ok(ZoneSet::new(
        stored.version,
        from_millis(stored.created_at_ms),
        stored.created_by,
        collection,
        zones,
    ))
}

#[derive(Debug, sqlx::FromRow)]
struct StoredHours {
    version: i64,
    timezone: String,
    open_minute: i64,
    close_minute: i64,
}

/// Stores `hours` as the next version.
pub async fn insert_hours(
    db: &Db,
    hours: &OperatingHours,
    created_by: &str,
    now: DateTime<Utc>,
) -> Result<i64, Error> {
    insert_next_version("operating hours", || async {
        db_write!(db, |pool| {
        sqlx::query_scalar(
            "insert into operating_hours (version, created_at_ms, created_by, timezone, open_minute, close_minute) \
             select coalesce(max(version), 0) + 1, $1, $2, $3, $4, $5 from operating_hours \
             returning version",
        )
        .bind(to_millis(now))
        .bind(created_by)
        .bind(hours.timezone.name())
        .bind(i64::from(hours.open.minutes()))
        .bind(i64::from(hours.close.minutes()))
        .fetch_one(pool)
        .await
    })
    })
    .await
}

/// The hours in force and their version: the latest stored, or 07:00–23:00 Paris time as
/// version 0.
pub async fn load_hours(db: &Db) -> anyhow::Result<(i64, OperatingHours)> {
    let stored: Option<StoredHours> = db_run!(db, |pool| {
        sqlx::query_as(
            "select version, timezone, open_minute, close_minute from operating_hours \
             order by version desc limit 1",
        )
        .fetch_optional(pool)
        .await
    })?;
    let Some(stored) = stored else {
        return Ok((0, OperatingHours::default()));
    };
    let minute = |m: i64| {
        u16::try_from(m)
            .ok()
            .and_then(TimeOfDay::from_minutes)
            .with_context(|| format!("stored operating hours have minute {m}"))
    };
    let timezone = stored
        .timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("stored time zone {:?} is unknown", stored.timezone))?;
    let hours = OperatingHours::new(
        timezone,
        minute(stored.open_minute)?,
        minute(stored.close_minute)?,
    )?;
    Ok((stored.version, hours))
}

/// The highest stored versions of the zone sets and of the hours (0 when none).
pub async fn latest_versions(db: &Db) -> Result<(i64, i64), sqlx::Error> {
    db_run!(db, |pool| {
        sqlx::query_as(
            "select (select coalesce(max(version), 0) from zone_sets), \
                    (select coalesce(max(version), 0) from operating_hours)",
        )
        .fetch_one(pool)
        .await
    })
}
