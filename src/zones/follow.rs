//! Several servers on one database: each follows the versions the others store, so an
//! upload accepted by one is in force on all of them within a few seconds.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::store;
use crate::app::{every, AppState};

/// Checks the database for newer zone sets and hours every `config.zones_refresh_ms`
/// until `shutdown` turns true.
pub async fn follow_database(state: AppState, shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.config.zones_refresh_ms.max(10));
    let state = &state;
    every(
        period,
        shutdown,
        "checking for newer zones or hours",
        || catch_up(state),
    )
    .await
}

/// Puts in force the latest stored zone set and hours when they are newer than ours.
async fn catch_up(state: &AppState) -> anyhow::Result<()> {
    let (zones, hours) = store::latest_versions(&state.db).await?;
    if zones > state.zones.current().version() {
        let set = store::load_zone_set(&state.db, state.clock.now())
            .await
            .context("loading the latest zone set")?;
        tracing::info!(
            version = set.version(),
            "zone set stored by another server now in force"
        );
        state.zones.replace(set);
    }
    if hours > state.hours.version() {
        let (version, loaded) = store::load_hours(&state.db)
            .await
            .context("loading the latest hours")?;
        tracing::info!(
            version,
            "operating hours stored by another server now in force"
        );
        state.hours.replace(version, loaded);
    }
    Ok(())
}
