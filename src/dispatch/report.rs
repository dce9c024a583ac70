//! The fleet's entry point: every accepted scooter report passes through
//! [`on_scooter_report`], which creates a battery-swap task when the range is low.
//!
//! The common case — a scooter well above the threshold that this server already knows to
//! be armed — is answered from memory, with no database work: that bit is kept in the
//! scooter's record in the live index, so it costs nothing per scooter (a scooter the index
//! does not hold is never remembered as armed, and each of its high reports asks the
//! database). A low report always checks the database, which has the last word. That a
//! scooter is disarmed is remembered for `dispatch.memory_secs` only, since another server
//! may complete its task meanwhile.
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
use crate::fleet::Fleet;

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
///
/// That a scooter is armed is the common case, true of nearly the whole fleet: it is kept in
/// the scooter's own record in the live index ([`crate::fleet::Record::dispatch_armed`]), at no cost in
/// memory. That it got a task, with the task's position and range, is kept here for the few
/// scooters below the threshold, and trusted for `trust` only.
#[derive(Debug)]
pub struct Dispatcher {
    disarmed: Mutex<Disarmed>,
    trust: Duration,
    /// Low reports waiting to be turned into tasks.
    pub(super) intake: Intake,
}

/// Scooters remembered as disarmed, with when; those older than the trust are dropped once
/// the map has doubled since it was last pruned.
#[derive(Debug, Default)]
struct Disarmed {
    scooters: HashMap<String, (Known, Instant)>,
    pruned_at_len: usize,
}

/// The disarmed scooters are not pruned below this many.
const PRUNED_FROM: usize = 1_024;

impl Dispatcher {
    pub fn new(trust: Duration) -> Self {
        Self {
            disarmed: Mutex::new(Disarmed::default()),
            trust,
            intake: Intake::default(),
        }
    }

    fn disarmed(&self) -> std::sync::MutexGuard<'_, Disarmed> {
        self.disarmed.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn known(&self, fleet: &Fleet, scooter_id: &str) -> Option<Known> {
        let armed = fleet.read().record(scooter_id).map(|r| r.dispatch_armed);
        if armed == Some(true) {
            return Some(Known::Armed);
        }
        self.disarmed()
            .scooters
            .get(scooter_id)
            .filter(|(_, since)| since.elapsed() < self.trust)
            .map(|(known, _)| *known)
    }

    /// Remembers `scooter_ids` as armed: they may get a task.
    pub(super) fn remember_armed<S: AsRef<str>>(&self, fleet: &Fleet, scooter_ids: &[S]) {
        fleet.set_dispatch_armed(scooter_ids, true);
        let mut disarmed = self.disarmed();
        for scooter_id in scooter_ids {
            disarmed.scooters.remove(scooter_id.as_ref());
        }
    }

    /// Remembers that the scooter got its task, written with this position and range.
    pub(super) fn remember_disarmed(
        &self,
        fleet: &Fleet,
        scooter_id: &str,
        (lat, lon): (f64, f64),
        range_km: f64,
    ) {
        fleet.set_dispatch_armed(&[scooter_id], false);
        let mut disarmed = self.disarmed();
        let now = Instant::now();
        if disarmed.scooters.len() >= PRUNED_FROM.max(2 * disarmed.pruned_at_len) {
            let trust = self.trust;
            disarmed
                .scooters
                .retain(|_, (_, since)| now.duration_since(*since) < trust);
            disarmed.pruned_at_len = disarmed.scooters.len();
        }
        let known = Known::Disarmed { lat, lon, range_km };
        disarmed
            .scooters
            .insert(scooter_id.to_owned(), (known, now));
    }

    /// Forgets a scooter, so its next report asks the database.
    pub fn forget(&self, fleet: &Fleet, scooter_id: &str) {
        fleet.set_dispatch_armed(&[scooter_id], false);
        self.disarmed().scooters.remove(scooter_id);
    }

    /// How many scooters this server remembers as disarmed.
    #[cfg(test)]
    fn disarmed_count(&self) -> usize {
        self.disarmed().scooters.len()
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
    let known = dispatcher.known(&state.fleet, &report.scooter_id);
    let position = (report.lat, report.lon);
    match hysteresis(config, known, report.range_km, report.on_trip, position) {
        Step::Nothing => Ok(ReportOutcome::Nothing),
        Step::Rearm => {
            store::rearm(&state.db, &report.scooter_id, state.clock.now()).await?;
            dispatcher.remember_armed(&state.fleet, &[&report.scooter_id]);
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
            dispatcher.remember_disarmed(
                &state.fleet,
                &report.scooter_id,
                position,
                report.range_km,
            );
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
    state.dispatch.forget(&state.fleet, &swap.scooter_id);
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

    fn fleet() -> Fleet {
        let scooter = |id: &str| crate::fleet::Scooter {
            scooter_id: id.into(),
            state: crate::fleet::ScooterState::Available,
            state_version: 1,
            lat: 48.85,
            lon: 2.35,
            range_km: 30.0,
            battery_pct: 80.0,
            last_seen_ms: 0,
            heard_ms: 0,
        };
        let live = crate::fleet::live::LiveIndex::build(vec![
            (scooter("CS-1"), [1; 32]),
            (scooter("CS-2"), [2; 32]),
        ]);
        Fleet::in_memory(live)
    }

    #[test]
    fn armed_is_remembered_for_good_disarmed_only_for_a_while() {
        let fleet = fleet();
        let dispatcher = Dispatcher::new(Duration::ZERO);
        assert_eq!(dispatcher.known(&fleet, "CS-1"), None);
        dispatcher.remember_armed(&fleet, &["CS-1"]);
        assert_eq!(dispatcher.known(&fleet, "CS-1"), Some(Known::Armed));
        assert!(fleet
            .read()
            .record("CS-1")
            .is_some_and(|r| r.dispatch_armed));
        dispatcher.remember_disarmed(&fleet, "CS-1", (48.85, 2.35), 9.0);
        assert_eq!(
            dispatcher.known(&fleet, "CS-1"),
            None,
            "asks the database again"
        );

        let trusting = Dispatcher::new(Duration::from_secs(60));
        trusting.remember_disarmed(&fleet, "CS-2", (48.85, 2.35), 9.0);
        let disarmed = Known::Disarmed {
            lat: 48.85,
            lon: 2.35,
            range_km: 9.0,
        };
        assert_eq!(trusting.known(&fleet, "CS-2"), Some(disarmed));
        trusting.remember_armed(&fleet, &["CS-2"]);
        assert_eq!(trusting.known(&fleet, "CS-2"), Some(Known::Armed));
        assert_eq!(
            trusting.disarmed_count(),
            0,
            "armed again, no longer held as disarmed"
        );
        trusting.forget(&fleet, "CS-2");
        assert_eq!(trusting.known(&fleet, "CS-2"), None);
        assert!(!fleet
            .read()
            .record("CS-2")
            .is_some_and(|r| r.dispatch_armed));
    }

    #[test]
    fn disarmed_scooters_past_the_trust_are_pruned_as_the_map_grows() {
        let fleet = fleet();
        let dispatcher = Dispatcher::new(Duration::ZERO);
        for i in 0..3 * PRUNED_FROM {
            dispatcher.remember_disarmed(&fleet, &format!("X-{i}"), (48.85, 2.35), 9.0);
        }
        assert!(
            dispatcher.disarmed_count() <= PRUNED_FROM,
            "{} held",
            dispatcher.disarmed_count()
        );
        let trusting = Dispatcher::new(Duration::from_secs(60));
        for i in 0..3 * PRUNED_FROM {
            trusting.remember_disarmed(&fleet, &format!("X-{i}"), (48.85, 2.35), 9.0);
        }
        assert_eq!(
            trusting.disarmed_count(),
            3 * PRUNED_FROM,
            "all still trusted"
        );
    }
}
