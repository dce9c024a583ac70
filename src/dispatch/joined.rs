//! Low reports that join another domain's transaction: the telemetry writer's group commit
//! creates and assigns the tasks its low points call for before it commits, so a point and
//! its task are stored together and the crew sees the task one commit sooner than if
//! dispatch waited for the point to be stored first.

use std::collections::HashSet;
use std::future::Future;

use chrono::{DateTime, Utc};

use super::intake::{pass_on, Prepared, Settled};
use super::lifecycle::Task;
use super::report::ScooterReport;
use super::{hysteresis, store, Step};
use crate::app::AppState;
use crate::conn_run;
use crate::db::Conn;

/// What one telemetry group's points call for, prepared, then stored in its transaction.
pub struct Joined {
    /// Scooters back above threshold + margin that this server does not know to be armed.
    rearm: Vec<String>,
    /// Low scooters that may get a task.
    prepared: Prepared,
    now: DateTime<Utc>,
    /// What the transaction created, once stored; `None` if storing it failed.
    created: Option<Vec<Option<Task>>>,
}

/// Of `reports` (at most one per scooter), those whose range calls for a task or for the
/// scooter to be re-armed, as this server remembers the scooters; `None` when none does.
/// The others are left to [`super::on_scooter_report`] after the commit, as before.
pub fn join(state: &AppState, reports: Vec<ScooterReport>) -> Option<Joined> {
    let config = &state.config.dispatch;
    let mut low = Vec::new();
    let mut rearm = Vec::new();
    for report in reports {
        let known = state.dispatch.known(&state.fleet, &report.scooter_id);
        let position = (report.lat, report.lon);
        match hysteresis(config, known, report.range_km, report.on_trip, position) {
            Step::Trigger => low.push((report, ())),
            Step::Rearm => rearm.push(report.scooter_id),
            Step::Nothing | Step::RefreshTask => {}
        }
    }
    if low.is_empty() && rearm.is_empty() {
        return None;
    }
    let (prepared, _) = Prepared::new(state, low);
    Some(Joined {
        rearm,
        prepared,
        now: state.clock.now(),
        created: None,
    })
}

impl Joined {
    /// Re-arms, then creates and assigns the tasks on `conn`, inside a savepoint: if that
    /// fails (a deadlock with another server's dispatch, say), only the savepoint is rolled
    /// back, the points around it are committed all the same, and the reports take the usual
    /// way after the commit.
    pub async fn store_on(&mut self, conn: &mut Conn<'_>) -> Result<(), sqlx::Error> {
        let tasks = self.prepared.new_tasks();
        let started = std::time::Instant::now();
        let created = conn_run!(conn, |c| {
            let mut savepoint = sqlx::Connection::begin(&mut *c).await?;
            let mut on = Conn::from(&mut *savepoint);
            let rearm: Vec<&str> = self.rearm.iter().map(String::as_str).collect();
            let stored = match store::rearm_on(&mut on, &rearm, self.now).await {
                Ok(()) if tasks.is_empty() => Ok(Vec::new()),
                Ok(()) => store::open_tasks_on(&mut on, &tasks, self.now).await,
                Err(err) => Err(err),
            };
            match stored {
                Ok(created) => {
                    savepoint.commit().await?;
                    Some(created)
                }
                Err(err) => {
                    tracing::warn!(error = %err, reports = tasks.len() + rearm.len(), "battery-swap reports left to dispatch's own transaction");
                    savepoint.rollback().await?;
                    None
                }
            }
        });
        metrics::histogram!("dispatch_batch_seconds").record(started.elapsed().as_secs_f64());
        self.created = created;
        Ok(())
    }

    /// Call once the transaction has committed. Remembers the re-armed scooters as armed
    /// and the others as disarmed, and returns the scooters whose task still needs a crew,
    /// with the work that finds one.
    pub fn settle(
        self,
        state: &AppState,
    ) -> Option<(HashSet<String>, impl Future<Output = ()> + Send + 'static)> {
        let created = self.created?;
        state.dispatch.remember_armed(&state.fleet, &self.rearm);
        let passed_on: Vec<(Task, Option<String>)> = self
            .prepared
            .settle(state, created)
            .into_iter()
            .filter_map(|settled| match settled {
                Settled::Done(_) => None,
                Settled::PassOn { task, proposed } => Some((*task, proposed)),
            })
            .collect();
        if passed_on.is_empty() {
            return None;
        }
        let scooters = passed_on
            .iter()
            .map(|(t, _)| t.scooter_id.clone())
            .collect();
        let state = state.clone();
        let work = async move {
            for outcome in pass_on(&state, passed_on).await {
                if let Err(err) = outcome {
                    tracing::error!(error = %err, "assigning a battery-swap task failed");
                }
            }
        };
        Some((scooters, work))
    }
}
