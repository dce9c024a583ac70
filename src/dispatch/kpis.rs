//! The numbers of dispatch: how long from a scooter's low-range point to its task being
//! assigned, accepted and done (p50/p90 over the last 24 hours), and how many tasks are
//! waiting. Served at `GET /v1/ops/kpis` and as Prometheus metrics.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::assign::seconds_between;
use super::{percentile, store};
use crate::app::AppState;
use crate::clock::to_millis;
use crate::error::Error;

/// The window the durations are taken over.
pub const WINDOW_SECS: i64 = 86_400;
/// Tasks created longer ago than this before the window are not looked at.
const LOOKBACK_SECS: i64 = 8 * 86_400;

/// Percentiles of one step's durations, in seconds (`null` when nothing happened).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Durations {
    pub count: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
}

impl Durations {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Durations {
            count: values.len(),
            p50: percentile(&values, 0.5),
            p90: percentile(&values, 0.9),
        }
    }
}

/// Dispatch's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DispatchKpis {
    pub window_s: i64,
    pub open_tasks: i64,
    pub assigned_tasks: i64,
    pub accepted_tasks: i64,
    /// From the low-range point to the first crew getting the task.
    pub time_to_assign_s: Durations,
    pub time_to_accept_s: Durations,
    pub time_to_complete_s: Durations,
}

type StepTimes = (i64, Option<i64>, Option<i64>, Option<i64>);

/// Durations of the steps that happened within the window ending at `now_ms`.
pub fn step_durations(
    rows: &[StepTimes],
    now_ms: i64,
    window_ms: i64,
) -> (Durations, Durations, Durations) {
    let since = now_ms - window_ms;
    let step = |pick: fn(&StepTimes) -> Option<i64>| {
        Durations::of(
            rows.iter()
                .filter_map(|row| {
                    pick(row)
                        .filter(|&at| at >= since && at <= now_ms)
                        .map(|at| seconds_between(row.0, at))
                })
                .collect(),
        )
    };
    (step(|r| r.1), step(|r| r.2), step(|r| r.3))
}

/// Computes dispatch's numbers now.
pub async fn dispatch_kpis(state: &AppState) -> Result<DispatchKpis, Error> {
    let now = state.clock.now();
    let rows = store::step_times(
        &state.db,
        now - Duration::seconds(WINDOW_SECS + LOOKBACK_SECS),
    )
    .await?;
    let (assign, accept, complete) = step_durations(&rows, to_millis(now), WINDOW_SECS * 1000);
    let counts = store::active_counts(&state.db).await?;
    let count = |status: &str| {
        counts
            .iter()
            .find(|(s, _)| s == status)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    Ok(DispatchKpis {
        window_s: WINDOW_SECS,
        open_tasks: count("open"),
        assigned_tasks: count("assigned"),
        accepted_tasks: count("accepted"),
        time_to_assign_s: assign,
        time_to_accept_s: accept,
        time_to_complete_s: complete,
    })
}

/// Sets the task gauges from the database (the same on every server).
pub async fn update_gauges(state: &AppState) -> Result<(), Error> {
    let counts = store::active_counts(&state.db).await?;
    for status in ["open", "assigned", "accepted"] {
        let n = counts
            .iter()
            .find(|(s, _)| s == status)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        metrics::gauge!("dispatch_tasks", "status" => status).set(n as f64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_count_steps_inside_the_window_only() {
        let now = 100 * 86_400_000;
        let window = 86_400_000;
        let rows = vec![
            (
                now - 60_000,
                Some(now - 59_000),
                Some(now - 30_000),
                Some(now),
            ),
            (now - 10_000, Some(now - 7_000), None, None),
            // Assigned before the window, completed inside it.
            (
                now - 2 * window,
                Some(now - 2 * window + 1_000),
                None,
                Some(now - 1_000),
            ),
        ];
        let (assign, accept, complete) = step_durations(&rows, now, window);
        assert_eq!(assign.count, 2);
        assert_eq!(assign.p50, Some(1.0));
        assert_eq!(assign.p90, Some(3.0));
        assert_eq!(accept.count, 1);
        assert_eq!(accept.p50, Some(30.0));
        assert_eq!(complete.count, 2);
        assert_eq!(complete.p90, Some(2.0 * 86_400.0 - 1.0));
    }
}
