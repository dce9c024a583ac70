//! Dispatch: battery-swap tasks, from a scooter's low range to the nearest crew and back to
//! a rentable scooter.
//!
//! The rules here are pure: the hysteresis that decides when a scooter gets a task, the
//! urgency order of open tasks, and which open tasks a crew receives. The tour order of a
//! crew's tasks is in [`tour`]. [`report`] is the entry point for the fleet, [`intake`] turns
//! low reports into tasks in batches, [`joined`] does it inside the telemetry group commit,
//! [`assign`] moves tasks between crews, [`worker`] passes on tasks nobody accepted in time.
//!
//! [`tour`]: crate::dispatch::tour
//! [`report`]: crate::dispatch::report
//! [`intake`]: crate::dispatch::intake
//! [`joined`]: crate::dispatch::joined
//! [`assign`]: crate::dispatch::assign
//! [`worker`]: crate::dispatch::worker

pub mod assign;
pub mod http;
pub mod intake;
pub mod joined;
pub mod kpis;
pub mod lifecycle;
pub mod report;
pub mod store;
pub mod tour;
pub mod worker;

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

pub use assign::crew_changed;
pub use report::{
    apply_swap_to_fleet, on_scooter_report, Dispatcher, ReportOutcome, ScooterReport,
};

/// Settings of the dispatcher.
#[derive(Clone, Debug, clap::Args)]
pub struct DispatchConfig {
    /// Range below which a scooter gets a battery-swap task, in km.
    #[arg(
        long = "dispatch-threshold-km",
        env = "SCOOTFLEET_DISPATCH_THRESHOLD_KM",
        default_value_t = 10.0
    )]
    pub threshold_km: f64,

    /// After a task, a scooter gets no new one until its battery is swapped or its range
    /// rises above threshold + this margin, in km.
    #[arg(
        long = "dispatch-margin-km",
        env = "SCOOTFLEET_DISPATCH_MARGIN_KM",
        default_value_t = 2.0
    )]
    pub margin_km: f64,

    /// Seconds a crew has to accept a task before it goes to the next crew.
    #[arg(
        long = "dispatch-accept-timeout-secs",
        env = "SCOOTFLEET_DISPATCH_ACCEPT_TIMEOUT_SECS",
        default_value_t = 120
    )]
    pub accept_timeout_secs: u64,

    /// Batteries aboard a crew's van until an operator says otherwise.
    #[arg(
        long = "dispatch-default-batteries",
        env = "SCOOTFLEET_DISPATCH_DEFAULT_BATTERIES",
        default_value_t = 10
    )]
    pub default_batteries: i64,

    /// A crew that becomes available receives the most urgent open tasks within this
    /// distance, in km (open tasks farther away go to their own nearest crew).
    #[arg(
        long = "dispatch-offer-radius-km",
        env = "SCOOTFLEET_DISPATCH_OFFER_RADIUS_KM",
        default_value_t = 5.0
    )]
    pub offer_radius_km: f64,

    /// How often the dispatch worker passes on timed-out tasks and retries open ones, in ms.
    #[arg(
        long = "dispatch-sweep-interval-ms",
        env = "SCOOTFLEET_DISPATCH_SWEEP_INTERVAL_MS",
        default_value_t = 1_000
    )]
    pub sweep_interval_ms: u64,

    /// How long this server trusts that a scooter has its task before checking the database
    /// again on a low report (another server may have completed the task), in seconds.
    #[arg(
        long = "dispatch-memory-secs",
        env = "SCOOTFLEET_DISPATCH_MEMORY_SECS",
        default_value_t = 30
    )]
    pub memory_secs: u64,
}

/// The life of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// No crew yet.
    Open,
    /// Offered to a crew, which has not accepted it yet.
    Assigned,
    Accepted,
    Done,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Assigned => "assigned",
            TaskStatus::Accepted => "accepted",
            TaskStatus::Done => "done",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            TaskStatus::Open,
            TaskStatus::Assigned,
            TaskStatus::Accepted,
            TaskStatus::Done,
            TaskStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }

    /// Not finished: the scooter's one task while it is in one of these states.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TaskStatus::Open | TaskStatus::Assigned | TaskStatus::Accepted
        )
    }
}

/// What this server remembers of a scooter's hysteresis state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Known {
    /// May get a task.
    Armed,
    /// Got a task; the task's position and range as last written.
    Disarmed { lat: f64, lon: f64, range_km: f64 },
}

/// What to do with a scooter's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Nothing,
    /// Range rose above threshold + margin: it may get a task again.
    Rearm,
    /// Range below threshold and parked: create its task unless disarmed or one exists.
    Trigger,
    /// Its task's position or range changed noticeably: update the task.
    RefreshTask,
}

/// A task's position is updated when the scooter moved more than this, in metres.
pub const TASK_MOVE_M: f64 = 100.0;
/// A task's range is updated when the scooter lost more than this, in km.
pub const TASK_RANGE_DROP_KM: f64 = 1.0;

/// The hysteresis: a task below `threshold_km` (not during a trip), then nothing until the
/// range is back above `threshold_km + margin_km` (or the battery is swapped, which re-arms
/// in the database). `known` is `None` when this server does not remember the scooter.
pub fn hysteresis(
    config: &DispatchConfig,
    known: Option<Known>,
    range_km: f64,
    on_trip: bool,
    position: (f64, f64),
) -> Step {
    if range_km >= config.threshold_km + config.margin_km {
        return match known {
            Some(Known::Armed) => Step::Nothing,
            _ => Step::Rearm,
        };
    }
    if range_km >= config.threshold_km || on_trip {
        return Step::Nothing;
    }
    match known {
        Some(Known::Disarmed {
            lat,
            lon,
            range_km: written,
        }) => {
            let moved = distance_m((lat, lon), position) > TASK_MOVE_M;
            if moved || written - range_km > TASK_RANGE_DROP_KM {
                Step::RefreshTask
            } else {
                Step::Nothing
            }
        }
        _ => Step::Trigger,
    }
}

/// Great-circle distance between two `(lat, lon)` points, in metres.
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    use geo::{Distance, Haversine, Point};
    Haversine.distance(Point::new(a.1, a.0), Point::new(b.1, b.0))
}

/// What the urgency order and a crew's choice need of an open task.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenTask {
    pub task_id: String,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub created_at_ms: i64,
}

/// Most urgent first: scooters below the rental floor (riders cannot take them), then the
/// lowest range, then the oldest task.
pub fn by_urgency(rental_floor_km: f64, a: &OpenTask, b: &OpenTask) -> Ordering {
    let below = |t: &OpenTask| t.range_km < rental_floor_km;
    below(b)
        .cmp(&below(a))
        .then(a.range_km.total_cmp(&b.range_km))
        .then(a.created_at_ms.cmp(&b.created_at_ms))
        .then_with(|| a.task_id.cmp(&b.task_id))
}

/// The open tasks a crew at `position` receives when it becomes available: the most urgent
/// within `radius_m`, as many as it has batteries to spare.
pub fn tasks_for_crew(
    position: (f64, f64),
    spare: i64,
    radius_m: f64,
    rental_floor_km: f64,
    mut open: Vec<OpenTask>,
) -> Vec<OpenTask> {
    let Ok(spare) = usize::try_from(spare) else {
        return Vec::new();
    };
    open.retain(|t| distance_m(position, (t.lat, t.lon)) <= radius_m);
    open.sort_by(|a, b| by_urgency(rental_floor_km, a, b));
    open.truncate(spare);
    open
}

/// The value below which `q` (0..=1) of `sorted` lies, by the nearest-rank method.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DispatchConfig {
        crate::config::Config::for_database("sqlite://unused.db").dispatch
    }

    const HERE: (f64, f64) = (48.8566, 2.3522);

    #[test]
    fn a_low_parked_scooter_triggers_once_and_rearms_above_the_margin() {
        let c = config();
        assert_eq!((c.threshold_km, c.margin_km), (10.0, 2.0));
        assert_eq!(hysteresis(&c, None, 9.9, false, HERE), Step::Trigger);
        assert_eq!(
            hysteresis(&c, Some(Known::Armed), 9.9, false, HERE),
            Step::Trigger
        );
        let disarmed = Known::Disarmed {
            lat: HERE.0,
            lon: HERE.1,
            range_km: 9.9,
        };
        assert_eq!(
            hysteresis(&c, Some(disarmed), 9.5, false, HERE),
            Step::Nothing
        );
        // Back above the threshold but within the margin: still disarmed.
        assert_eq!(
            hysteresis(&c, Some(disarmed), 11.9, false, HERE),
            Step::Nothing
        );
        assert_eq!(
            hysteresis(&c, Some(disarmed), 12.0, false, HERE),
            Step::Rearm
        );
        assert_eq!(hysteresis(&c, None, 30.0, false, HERE), Step::Rearm);
        // The common case: well above, already known armed, nothing to do.
        assert_eq!(
            hysteresis(&c, Some(Known::Armed), 30.0, false, HERE),
            Step::Nothing
        );
    }

    #[test]
    fn a_scooter_on_a_trip_waits_for_the_trip_to_end() {
        let c = config();
        assert_eq!(hysteresis(&c, None, 3.0, true, HERE), Step::Nothing);
        assert_eq!(hysteresis(&c, None, 3.0, false, HERE), Step::Trigger);
    }

    #[test]
    fn a_task_follows_its_scooter() {
        let c = config();
        let disarmed = Some(Known::Disarmed {
            lat: HERE.0,
            lon: HERE.1,
            range_km: 9.0,
        });
        let far = (HERE.0 + 0.01, HERE.1);
        assert_eq!(hysteresis(&c, disarmed, 9.0, false, far), Step::RefreshTask);
        assert_eq!(
            hysteresis(&c, disarmed, 7.5, false, HERE),
            Step::RefreshTask
        );
        assert_eq!(hysteresis(&c, disarmed, 8.5, false, HERE), Step::Nothing);
    }

    fn task(id: &str, range_km: f64, created_at_ms: i64, lat: f64) -> OpenTask {
        OpenTask {
            task_id: id.into(),
            lat,
            lon: HERE.1,
            range_km,
            created_at_ms,
        }
    }

    #[test]
    fn urgency_puts_unrentable_scooters_first_then_lowest_range() {
        let mut tasks = [
            task("a", 9.0, 1, HERE.0),
            task("b", 4.9, 3, HERE.0),
            task("c", 6.0, 2, HERE.0),
            task("d", 2.0, 4, HERE.0),
            task("e", 6.0, 1, HERE.0),
        ];
        tasks.sort_by(|a, b| by_urgency(5.0, a, b));
        let order: Vec<_> = tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(order, ["d", "b", "e", "c", "a"]);
    }

    #[test]
    fn a_crew_receives_the_most_urgent_tasks_near_it_up_to_its_spare_batteries() {
        let open = vec![
            task("near-high", 9.0, 1, HERE.0 + 0.001),
            task("near-low", 3.0, 2, HERE.0 + 0.002),
            task("far-lowest", 1.0, 3, HERE.0 + 0.5),
            task("near-mid", 6.0, 4, HERE.0 - 0.001),
        ];
        let picked = tasks_for_crew(HERE, 2, 5_000.0, 5.0, open.clone());
        let ids: Vec<_> = picked.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["near-low", "near-mid"]);
        assert!(tasks_for_crew(HERE, 0, 5_000.0, 5.0, open.clone()).is_empty());
        assert!(tasks_for_crew(HERE, -1, 5_000.0, 5.0, open).is_empty());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&values, 0.5), Some(5.0));
        assert_eq!(percentile(&values, 0.9), Some(9.0));
        assert_eq!(percentile(&[7.0], 0.9), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["open", "assigned", "accepted", "done", "cancelled"] {
            assert_eq!(TaskStatus::parse(s).unwrap().as_str(), s);
        }
        assert!(TaskStatus::parse("lost").is_none());
        assert!(TaskStatus::Accepted.is_active() && !TaskStatus::Done.is_active());
    }
}
