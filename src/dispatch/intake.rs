//! The intake of low reports: reports that arrive together are handled together.
//!
//! A low report joins a queue. When nobody is draining it, a drain task starts at once, so a
//! lone report waits for nothing; while a batch is in the database, the reports that arrive
//! meanwhile queue up and go together in the next one: one transaction creates and assigns
//! all their tasks, with multi-row statements. A burst of scooters crossing the threshold
//! thus costs a few transactions, not one per scooter.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::assign;
use super::lifecycle::Task;
use super::report::{ReportOutcome, ScooterReport};
use super::store::{self, NewTask};
use crate::app::AppState;
use crate::crews::CrewIndex;
use crate::error::Error;

/// The most reports one transaction takes; more wait for the next one.
const MAX_BATCH: usize = 2_000;

type Answer = oneshot::Sender<Result<ReportOutcome, String>>;

/// Low reports waiting for their batch.
#[derive(Debug, Default)]
pub struct Intake {
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<(ScooterReport, Answer)>,
    /// A drain task is running: it will take what is queued.
    draining: bool,
}

impl Intake {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next batch, or `None` (and no longer draining) when the queue is empty.
    fn next_batch(&self) -> Option<Vec<(ScooterReport, Answer)>> {
        let mut queue = self.queue();
        if queue.waiting.is_empty() {
            queue.draining = false;
            return None;
        }
        let n = queue.waiting.len().min(MAX_BATCH);
        Some(queue.waiting.drain(..n).collect())
    }
}

/// Creates the reported scooter's task (unless it has one) and assigns it, together with
/// whatever other low reports arrive meanwhile; answers once the task is stored.
pub async fn trigger(state: &AppState, report: ScooterReport) -> Result<ReportOutcome, Error> {
    let (answer, outcome) = oneshot::channel();
    let start = {
        let mut queue = state.dispatch.intake.queue();
        queue.waiting.push((report, answer));
        !std::mem::replace(&mut queue.draining, true)
    };
    if start {
        // A task of its own: a request that goes away does not strand the others.
        tokio::spawn(drain(state.clone()));
    }
    outcome
        .await
        .map_err(|_| Error::Internal(anyhow::anyhow!("dispatch dropped a low report")))?
        .map_err(|cause| Error::Internal(anyhow::anyhow!("creating a battery-swap task: {cause}")))
}

async fn drain(state: AppState) {
    loop {
        // Let the callers just answered (or woken with this report) queue their next reports
        // first: a few microseconds for a lone report, a fuller batch for many.
        tokio::task::yield_now().await;
        let Some(batch) = state.dispatch.intake.next_batch() else {
            return;
        };
        // Its own task too, so that a panic answers this batch with an error and the queue
        // keeps moving.
        if let Err(err) = tokio::spawn(handle(state.clone(), batch)).await {
            tracing::error!(error = %err, "a batch of low reports failed");
        }
    }
}

/// Proposes the nearest crew for each report, creates the tasks in one transaction, then
/// answers; a task its crew could not take goes to the next nearest crew on its own.
async fn handle(state: AppState, batch: Vec<(ScooterReport, Answer)>) {
    // One task per scooter: a later report of the same scooter is answered like the first.
    let mut seen = HashSet::new();
    let (batch, repeats): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|(report, _)| seen.insert(report.scooter_id.clone()));
    for (_, answer) in repeats {
        let _ = answer.send(Ok(ReportOutcome::AlreadyHandled));
    }
    let (prepared, answers) = Prepared::new(&state, batch);
    let new_tasks = prepared.new_tasks();
    let started = std::time::Instant::now();
    let created = store::open_tasks_if_armed(&state.db, &new_tasks, state.clock.now()).await;
    drop(new_tasks);
    metrics::histogram!("dispatch_batch_seconds").record(started.elapsed().as_secs_f64());
    let created = match created {
        Ok(created) => created,
        Err(err) => {
            tracing::error!(error = %err, reports = answers.len(), "storing battery-swap tasks failed");
            let cause = err.to_string();
            for answer in answers {
                let _ = answer.send(Err(cause.clone()));
            }
            return;
        }
    };
    let mut passed_on = Vec::new();
    let mut passing = Vec::new();
    for (settled, answer) in prepared.settle(&state, created).into_iter().zip(answers) {
        match settled {
            Settled::Done(outcome) => {
                let _ = answer.send(Ok(outcome));
            }
            Settled::PassOn { task, proposed } => {
                passed_on.push((*task, proposed));
                passing.push(answer);
            }
        }
    }
    if passed_on.is_empty() {
        return;
    }
    let outcomes = pass_on(&state, passed_on).await;
    for (outcome, answer) in outcomes.into_iter().zip(passing) {
        let _ = answer.send(outcome);
    }
}

/// Low reports made ready to be stored: the most urgent first, each with its task's id and
/// the crew the index proposes.
pub(super) struct Prepared {
    reports: Vec<ScooterReport>,
    ids: Vec<String>,
    crews: Vec<Option<String>>,
}

/// What became of a prepared report once its task's transaction committed.
pub(super) enum Settled {
    Done(ReportOutcome),
    /// Created open: the proposed crew, if any, could no longer take it.
    PassOn {
        task: Box<Task>,
        proposed: Option<String>,
    },
}

impl Prepared {
    /// `batch` names each scooter once; the extras come back in the prepared order.
    pub(super) fn new<T>(state: &AppState, mut batch: Vec<(ScooterReport, T)>) -> (Self, Vec<T>) {
        // When vans run short, the most urgent scooters get the batteries.
        let floor = state.config.rental_floor_km;
        batch.sort_by(|(a, _), (b, _)| {
            (b.range_km < floor)
                .cmp(&(a.range_km < floor))
                .then(a.range_km.total_cmp(&b.range_km))
        });
        let (reports, extras): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let ids = reports.iter().map(|_| crate::ids::new_id("task")).collect();
        let crews = propose_crews(&state.crews.read(), reports.iter());
        let prepared = Prepared {
            reports,
            ids,
            crews,
        };
        (prepared, extras)
    }

    pub(super) fn new_tasks(&self) -> Vec<NewTask<'_>> {
        self.reports
            .iter()
            .zip(&self.ids)
            .zip(&self.crews)
            .map(|((report, id), crew_id)| NewTask {
                id,
                scooter_id: &report.scooter_id,
                lat: report.lat,
                lon: report.lon,
                range_km: report.range_km,
                low_at: report.at,
                crew_id: crew_id.as_deref(),
            })
            .collect()
    }

    /// After the commit: remembers the scooters as disarmed, counts the batteries their
    /// crews now hold, and says what became of each report, in the prepared order.
    pub(super) fn settle(self, state: &AppState, created: Vec<Option<Task>>) -> Vec<Settled> {
        self.reports
            .into_iter()
            .zip(self.crews)
            .zip(created)
            .map(|((report, proposed), task)| {
                state.dispatch.remember_disarmed(
                    &state.fleet,
                    &report.scooter_id,
                    (report.lat, report.lon),
                    report.range_km,
                );
                let Some(task) = task else {
                    return Settled::Done(ReportOutcome::AlreadyHandled);
                };
                tracing::info!(task_id = %task.id, scooter_id = %task.scooter_id, range_km = task.range_km, "battery-swap task created");
                metrics::counter!("dispatch_tasks_created_total").increment(1);
                match task.crew_id.clone() {
                    Some(crew_id) => {
                        state.crews.write().adjust_held(&crew_id, 1);
                        assign::assigned(&task, &crew_id);
                        Settled::Done(ReportOutcome::TaskCreated {
                            task_id: task.id,
                            crew_id: Some(crew_id),
                        })
                    }
                    None => Settled::PassOn {
                        task: Box::new(task),
                        proposed,
                    },
                }
            })
            .collect()
    }
}

/// Tasks created open because their proposed crew could not take them (the index was
/// behind about that crew): the crews are read again, then each task goes to its nearest
/// crew now.
pub(super) async fn pass_on(
    state: &AppState,
    tasks: Vec<(Task, Option<String>)>,
) -> Vec<Result<ReportOutcome, String>> {
    let refused: HashSet<&str> = tasks.iter().filter_map(|(_, c)| c.as_deref()).collect();
    for crew_id in refused {
        if let Err(err) = assign::learn_crew(state, crew_id).await {
            tracing::warn!(error = ?err, %crew_id, "could not reread a crew");
        }
    }
    let assigning = tasks.into_iter().map(|(task, _)| async move {
        let at = (task.lat, task.lon);
        assign::to_nearest_crew(state, &task.id, at, &[])
            .await
            .map(|crew_id| ReportOutcome::TaskCreated {
                task_id: task.id.clone(),
                crew_id,
            })
            .map_err(|err| format!("{err:?}"))
    });
    futures_util::future::join_all(assigning).await
}

/// The nearest crew with a battery to spare for each report, counting the batteries promised
/// to the reports before it.
fn propose_crews<'a>(
    index: &CrewIndex,
    reports: impl Iterator<Item = &'a ScooterReport>,
) -> Vec<Option<String>> {
    let mut promised: HashMap<String, i64> = HashMap::new();
    reports
        .map(|report| {
            let crew_id = index
                .nearest(report.lat, report.lon, |id| {
                    let spare = index.get(id).map_or(0, |crew| crew.spare());
                    promised.get(id).copied().unwrap_or(0) < spare
                })
                .map(|crew| crew.crew_id.clone())?;
            *promised.entry(crew_id.clone()).or_default() += 1;
            Some(crew_id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crews::CrewState;

    fn crew(id: &str, lat: f64, batteries: i64) -> CrewState {
        CrewState {
            crew_id: id.into(),
            position: Some((lat, 2.35)),
            available: true,
            batteries_aboard: batteries,
            tasks_held: 1,
        }
    }

    fn low(id: &str, lat: f64) -> ScooterReport {
        ScooterReport {
            scooter_id: id.into(),
            lat,
            lon: 2.35,
            range_km: 8.0,
            on_trip: false,
            at: chrono::DateTime::from_timestamp_millis(0).unwrap(),
        }
    }

    #[test]
    fn a_batch_fills_the_nearest_van_then_the_next_then_leaves_tasks_open() {
        let index = CrewIndex::new([crew("near", 48.850, 3), crew("far", 48.900, 2)]);
        let reports: Vec<_> = (0..5).map(|i| low(&format!("CS-{i}"), 48.849)).collect();
        let proposed = propose_crews(&index, reports.iter());
        let proposed: Vec<_> = proposed.iter().map(|c| c.as_deref()).collect();
        // One battery of each van is already promised (`tasks_held`).
        assert_eq!(
            proposed,
            [Some("near"), Some("near"), Some("far"), None, None]
        );
    }
}
