//! The dispatch worker: passes on tasks not accepted in time, offers open tasks again (crews
//! may have become free, or another server may have created them), refreshes the crew index
//! from the database and the task gauges.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;

use super::lifecycle::Action;
use super::store::{self, Applied};
use super::{assign, by_urgency};
use crate::app::{every, AppState};
use crate::error::Error;

/// Open tasks retried per sweep, most urgent first.
const OPEN_TASKS_PER_SWEEP: i64 = 1_000;

/// Runs sweeps every `dispatch.sweep_interval_ms` until `shutdown` says stop.
pub async fn run(state: AppState, shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.config.dispatch.sweep_interval_ms.max(10));
    let state = &state;
    every(period, shutdown, "dispatch sweep", || sweep(state)).await
}

/// One pass: refresh, time out, retry open tasks, update gauges.
pub async fn sweep(state: &AppState) -> Result<(), Error> {
    state.crews.refresh(&state.db).await?;
    pass_on_timed_out(state).await?;
    retry_open(state).await?;
    super::kpis::update_gauges(state).await?;
    Ok(())
}

async fn pass_on_timed_out(state: &AppState) -> Result<(), Error> {
    let timeout = chrono::Duration::seconds(
        i64::try_from(state.config.dispatch.accept_timeout_secs).unwrap_or(i64::MAX / 1000),
    );
    let deadline = state.clock.now() - timeout;
    for (task_id, crew_id, assigned_at_ms) in store::unaccepted_since(&state.db, deadline).await? {
        let action = Action::TimeOut {
            crew_id: crew_id.clone(),
            assigned_at_ms,
        };
        if let Applied::Done { after, .. } = assign::apply(state, &task_id, &action).await? {
            tracing::info!(%task_id, %crew_id, "task not accepted in time; passing it on");
            metrics::counter!("dispatch_tasks_timed_out_total").increment(1);
            assign::pass_on(state, &after).await?;
        }
    }
    Ok(())
}

async fn retry_open(state: &AppState) -> Result<(), Error> {
    let mut open = store::open_tasks(&state.db, None, OPEN_TASKS_PER_SWEEP).await?;
    if open.is_empty() {
        return Ok(());
    }
    let floor = state.config.rental_floor_km;
    open.sort_by(|a, b| by_urgency(floor, a, b));
    let mut declines: HashMap<String, Vec<String>> = HashMap::new();
    for (task_id, crew_id) in store::declines_of_open_tasks(&state.db).await? {
        declines.entry(task_id).or_default().push(crew_id);
    }
    for open_task in open {
        let declined = declines.remove(&open_task.task_id).unwrap_or_default();
        // Only tasks some crew could take cost a query.
        let someone = state
            .crews
            .read()
            .nearest(open_task.lat, open_task.lon, |id| {
                !declined.iter().any(|d| d == id)
            })
            .is_some();
        if !someone {
            continue;
        }
        let at = (open_task.lat, open_task.lon);
        assign::to_nearest_crew(state, &open_task.task_id, at, &declined).await?;
    }
    Ok(())
}
