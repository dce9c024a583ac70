//! The fleet's entry point: every accepted scooter report passes through
//! [`on_scooter_report`], which creates a battery-swap task when the range is low.
//!
//! The common case — a scooter well above the threshold that this server already knows to
//! be armed — is answered from memory, with no database work. A low report always checks the
//! database, which has the last word. That a scooter is disarmed is remembered for
//! `dispatch.memory_secs` only, since another server may complete its task meanwhile.
//!
//! With several servers, a scooter's reports should reach one server at a time (route by
//! scooter): a server that remembers a scooter as armed does not see that another server
//! disarmed it, so it would not re-arm it in the database when its range rises again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::intake::Intake;
use super::store;
use super::{hysteresis, Known, Step};
use crate::app::AppState;
use crate::error::Error;

/// A position and range report of one scooter, as accepted by the fleet.
#[derive(Clone, Debug, PartialEq)]
pub struct ScooterReport {
    pub scooter_id: String,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    /// A scooter on a trip gets its task when the trip ends (report again then, with `false`).
    pub on_trip: bool,
    /// When the scooter measured it.
    pub at: DateTime<Utc>,
}

/// What a report led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportOutcome {
    Nothing,
    /// The scooter may get a task again.
    Rearmed,
    /// A task was created, and assigned to that crew if one could take it.
    TaskCreated {
        task_id: String,
        crew_id: Option<String>,
    },
    /// Low, but the scooter already has its task, or is waiting to be re-armed.
    AlreadyHandled,
    /// Its unfinished task now follows the scooter's position and range.
    TaskUpdated,
}

/// What this server remembers of scooters' hysteresis state.
#[derive(Debug)]
pub struct Dispatcher {
    memory: Mutex<HashMap<String, (Known, Instant)>>,
    trust: Duration,
    /// Low reports waiting to be turned into tasks.
    pub(super) intake: Intake,
}

impl Dispatcher {
    pub fn new(trust: Duration) -> Self {
        Self {
            memory: Mutex::new(HashMap::new()),
            trust,
            intake: Intake::default(),
        }
    }

    pub(super) fn known(&self, scooter_id: &str) -> Option<Known> {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory
            .get(scooter_id)
            .filter(|(known, since)| *known == Known::Armed || since.elapsed() < self.trust)
            .map(|(known, _)| *known)
    }

    /// Whether this server remembers the scooter as armed (nothing to do above threshold).
    pub fn knows_armed(&self, scooter_id: &str) -> bool {
        self.known(scooter_id) == Some(Known::Armed)
    }

    pub(super) fn remember(&self, scooter_id: &str, known: Known) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.insert(scooter_id.to_owned(), (known, Instant::now()));
    }

    /// Forgets a scooter, so its next report asks the database.
    pub fn forget(&self, scooter_id: &str) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.remove(scooter_id);
    }
}

/// Creates the scooter's battery-swap task when its range is below the threshold and it is
/// not on a trip — at most one unfinished task per scooter, even with concurrent reports on
/// several servers — and assigns it to the nearest crew that can take it.
pub async fn on_scooter_report(
    state: &AppState,
    report: ScooterReport,
) -> Result<ReportOutcome, Error> {
    let config = &state.config.dispatch;
    let dispatcher = &state.dispatch;
    let known = dispatcher.known(&report.scooter_id);
    let position = (report.lat, report.lon);
    let disarmed = Known::Disarmed {
        lat: report.lat,
        lon: report.lon,
        range_km: report.range_km,
    };
    match hysteresis(config, known, report.range_km, report.on_trip, position) {
        Step::Nothing => Ok(ReportOutcome::Nothing),
        Step::Rearm => {
            store::rearm(&state.db, &report.scooter_id, state.clock.now()).await?;
            dispatcher.remember(&report.scooter_id, Known::Armed);
            Ok(ReportOutcome::Rearmed)
        }
        Step::RefreshTask => {
            store::refresh_active_task(
                &state.db,
                &report.scooter_id,
                report.lat,
                report.lon,
                report.range_km,
            )
            .await?;
            dispatcher.remember(&report.scooter_id, disarmed);
            Ok(ReportOutcome::TaskUpdated)
        }
        Step::Trigger => super::intake::trigger(state, report).await,
    }
}

/// A battery swap a crew has completed.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletedSwap {
    pub task_id: String,
    pub scooter_id: String,
    pub crew_id: String,
    /// The range of the fresh battery.
    pub range_km: f64,
    pub at: DateTime<Utc>,
}

/// Tells the fleet a scooter's battery was swapped: set its range, make it rentable again and
/// record the MDS `battery_charged` event.
///
/// The swap itself (task done, the crew's battery used, the scooter re-armed, the new range)
/// is already stored with the task when this is called.
pub async fn apply_swap_to_fleet(state: &AppState, swap: &CompletedSwap) -> Result<(), Error> {
    state.dispatch.forget(&swap.scooter_id);
    crate::fleet::accept::battery_swapped(state, &swap.scooter_id, swap.range_km, swap.at).await?;
    tracing::info!(
        task_id = %swap.task_id,
        scooter_id = %swap.scooter_id,
        crew_id = %swap.crew_id,
        range_km = swap.range_km,
        "battery swapped"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_is_remembered_for_good_disarmed_only_for_a_while() {
        let dispatcher = Dispatcher::new(Duration::ZERO);
        assert_eq!(dispatcher.known("CS-1"), None);
        dispatcher.remember("CS-1", Known::Armed);
        assert_eq!(dispatcher.known("CS-1"), Some(Known::Armed));
        let disarmed = Known::Disarmed {
            lat: 48.85,
            lon: 2.35,
            range_km: 9.0,
        };
        dispatcher.remember("CS-1", disarmed);
        assert_eq!(dispatcher.known("CS-1"), None, "asks the database again");

        let trusting = Dispatcher::new(Duration::from_secs(60));
        trusting.remember("CS-2", disarmed);
        assert_eq!(trusting.known("CS-2"), Some(disarmed));
        trusting.forget("CS-2");
        assert_eq!(trusting.known("CS-2"), None);
    }
}
