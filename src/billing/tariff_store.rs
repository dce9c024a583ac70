//! Tariff versions in the database, and the worker that follows versions other servers
//! sharing the database store.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio::sync::watch;

use super::{from_cents, to_cents, PackCatalogue, Tariff};
use crate::app::{every, AppState};
use crate::clock::{from_millis, to_millis};
use crate::db::{insert_next_version, Db};
use crate::error::Error;
use crate::{db_run, db_write};

/// Stores the editable parts of `tariff` as the next version; returns that version.
pub async fn insert(
    db: &Db,
    tariff: &Tariff,
    created_by: &str,
    now: DateTime<Utc>,
) -> Result<i64, Error> {
    let packs = tariff.packs.to_string();
    let vat_rate = tariff.vat_rate.normalize().to_string();
    insert_next_version("tariff", || async {
        db_write!(db, |pool| {
            sqlx::query_scalar(
                "insert into tariffs (version, created_at_ms, created_by, rate_per_minute_cents, \
               vat_rate, free_trial_minutes, unlock_minimum_cents, packs) \
             select coalesce(max(version), 0) + 1, $1, $2, $3, $4, $5, $6, $7 from tariffs \
             returning version",
            )
            .bind(to_millis(now))
            .bind(created_by)
            .bind(to_cents(tariff.rate_per_minute))
            .bind(&vat_rate)
            .bind(tariff.free_trial_minutes)
            .bind(to_cents(tariff.unlock_minimum))
            .bind(&packs)
            .fetch_one(pool)
            .await
        })
    })
    .await
}

#[derive(sqlx::FromRow)]
struct TariffRow {
    version: i64,
    created_at_ms: i64,
    rate_per_minute_cents: i64,
    vat_rate: String,
    free_trial_minutes: i64,
    unlock_minimum_cents: i64,
    packs: String,
}

/// The tariff in force: the latest stored version over `configured` (which gives the
/// currency and the top-up maximum), or `configured` itself when none is stored.
pub async fn load(db: &Db, configured: &Tariff) -> anyhow::Result<Tariff> {
    let row: Option<TariffRow> = db_run!(db, |pool| {
        sqlx::query_as(
            "select version, created_at_ms, rate_per_minute_cents, vat_rate, free_trial_minutes, \
               unlock_minimum_cents, packs from tariffs order by version desc limit 1",
        )
        .fetch_optional(pool)
        .await
    })
    .context("reading the stored tariff")?;
    let Some(row) = row else {
        return Ok(configured.clone());
    };
    Ok(Tariff {
        version: row.version,
        updated_at: Some(from_millis(row.created_at_ms)),
        rate_per_minute: from_cents(row.rate_per_minute_cents),
        vat_rate: Decimal::from_str(&row.vat_rate).with_context(|| {
            format!(
                "stored tariff {} has VAT rate {:?}",
                row.version, row.vat_rate
            )
        })?,
        free_trial_minutes: row.free_trial_minutes,
        unlock_minimum: from_cents(row.unlock_minimum_cents),
        packs: PackCatalogue::from_str(&row.packs)
            .with_context(|| format!("stored tariff {} has packs {:?}", row.version, row.packs))?,
        ..configured.clone()
    })
}

async fn latest_version(db: &Db) -> Result<i64, sqlx::Error> {
    db_run!(db, |pool| {
        sqlx::query_scalar("select coalesce(max(version), 0) from tariffs")
            .fetch_one(pool)
            .await
    })
}

/// Checks the database for a newer tariff every `config.zones_refresh_ms` (the same pace as
/// zones and hours) until `shutdown` turns true.
pub async fn follow_database(state: AppState, shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.config.zones_refresh_ms.max(10));
    let state = &state;
    every(period, shutdown, "checking for a newer tariff", || {
        catch_up(state)
    })
    .await
}

async fn catch_up(state: &AppState) -> anyhow::Result<()> {
    let current = state.tariff.current();
    if latest_version(&state.db).await? > current.version {
        let tariff = load(&state.db, &current).await?;
        tracing::info!(
            version = tariff.version,
            "tariff stored by another server now in force"
        );
        state.tariff.replace(tariff);
    }
    Ok(())
}
