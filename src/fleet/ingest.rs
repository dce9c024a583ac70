//! Group commit of telemetry: requests hand their points to a writer task, which stores
//! everything that queued up meanwhile in a single transaction and then answers each one.
//! A request's 202 therefore comes after its points are committed and on disk, at the cost
//! of one transaction (and one share of a log sync) per group rather than per request.
//!
//! SQLite has one writer; PostgreSQL may have several side by side
//! (`SCOOTFLEET_TELEMETRY_WRITERS`), each for its own share of the scooters (see
//! `Fleet::ingest`), so one group's commit does not wait for another's, and on PostgreSQL a
//! large group (batches from many devices) is itself committed in parts side by side (see
//! [`SPLIT_AT_POINTS`]). A point that takes a scooter below the dispatch threshold has its
//! battery-swap task created and assigned in that same transaction, and one back above
//! threshold + margin is re-armed there (see [`crate::dispatch::joined::join`]).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::DateTime;
use tokio::sync::{mpsc, oneshot, watch};

use super::commit::{self, Novelty};
use super::{Reading, ScooterState};
use crate::app::AppState;
use crate::db::Backend;
use crate::dispatch::{self, ScooterReport};

/// The most points one transaction takes; more wait for the next one.
const MAX_GROUP_POINTS: usize = 5000;

/// On PostgreSQL, a group of at least this many points is committed as [`SPLIT_PARTS`]
/// transactions side by side, each for its own share of the group's scooters: one statement
/// of thousands of rows keeps one PostgreSQL backend busy while the others wait, and
/// batches from many devices queue behind it. Smaller groups (one point a request) stay one
/// transaction, which costs less a point than several.
const SPLIT_AT_POINTS: usize = 1000;

/// How many transactions a large group is committed as, on PostgreSQL.
const SPLIT_PARTS: usize = 2;

/// One request's valid points, waiting to be stored.
#[derive(Debug)]
pub struct Job {
    pub scooter_id: Arc<str>,
    pub points: Vec<Reading>,
    pub received_at_ms: i64,
    /// Told once the points are committed and on disk, or why they are not.
    pub ack: oneshot::Sender<Result<(), String>>,
}

/// Runs until shutdown, then stores whatever is still queued before returning.
pub async fn run_writer(
    state: AppState,
    mut inbox: mpsc::Receiver<Job>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            biased;
            job = inbox.recv() => match job {
                Some(job) => job,
                None => return,
            },
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let group = gather(first, &mut inbox);
        commit(&state, group).await;
    }
    inbox.close();
    while let Some(first) = inbox.recv().await {
        let group = gather(first, &mut inbox);
        commit(&state, group).await;
    }
}

/// `first` and whatever else is already waiting, up to the group size.
fn gather(first: Job, inbox: &mut mpsc::Receiver<Job>) -> Vec<Job> {
    let mut points = first.points.len();
    let mut group = vec![first];
    while points < MAX_GROUP_POINTS {
        match inbox.try_recv() {
            Ok(job) => {
                points += job.points.len();
                group.push(job);
            }
            Err(_) => break,
        }
    }
    group
}

/// Commits `group`, in parts side by side where it is large (see [`SPLIT_AT_POINTS`]), and
/// answers its requests once their points are durable.
async fn commit(state: &AppState, group: Vec<Job>) {
    match split(state, group) {
        Ok(parts) => {
            metrics::counter!("scootfleet_telemetry_split_groups_total").increment(1);
            futures_util::future::join_all(parts.into_iter().map(|part| commit_one(state, part)))
                .await;
        }
        Err(group) => commit_one(state, group).await,
    }
}

/// `group`'s jobs in [`SPLIT_PARTS`] parts by scooter (each scooter's jobs in one part, so
/// no two transactions touch the same rows), or the group itself (`Err`) where it stays one
/// transaction: on SQLite (one writer whatever we do), below [`SPLIT_AT_POINTS`], when all
/// its scooters fall in one part, or when a point calls for dispatch, whose tasks and crews
/// are created and assigned in one transaction with the group's rows.
fn split(state: &AppState, group: Vec<Job>) -> Result<Vec<Vec<Job>>, Vec<Job>> {
    let points: usize = group.iter().map(|job| job.points.len()).sum();
    if state.db.backend() != Backend::Postgres || points < SPLIT_AT_POINTS {
        return Err(group);
    }
    let rows = as_rows(&group);
    let calls_dispatch = !dispatch_reports(state, &commit::newest_points(&rows)).is_empty();
    drop(rows);
    if calls_dispatch {
        return Err(group);
    }
    let mut parts: Vec<Vec<Job>> = (0..SPLIT_PARTS).map(|_| Vec::new()).collect();
    for job in group {
        parts[super::service::part(&job.scooter_id, SPLIT_PARTS)].push(job);
    }
    parts.retain(|part| !part.is_empty());
    match parts.len() {
        1 => Err(parts.pop().unwrap_or_default()),
        _ => Ok(parts),
    }
}

/// The rows of `group` as the commit writes them.
fn as_rows(group: &[Job]) -> Vec<commit::Points<'_>> {
    group
        .iter()
        .map(|job| commit::Points {
            scooter_id: &job.scooter_id,
            points: &job.points,
            received_at_ms: job.received_at_ms,
        })
        .collect()
}

/// Commits `group` as one transaction and answers its requests once their points are
/// durable.
async fn commit_one(state: &AppState, group: Vec<Job>) {
    let started = std::time::Instant::now();
    let rows = as_rows(&group);
    let newest = commit::newest_points(&rows);
    let mut tasks = dispatch::joined::join(state, dispatch_reports(state, &newest));
    // A group with tasks always takes the statement that skips stored points (see
    // `commit::commit_points`): its novelty is not worked out.
    let novelty = match tasks {
        None => novelty(state, &rows),
        Some(_) => Novelty::MaybeStored,
    };
    let result = commit::commit_points(&state.db, &rows, &newest, tasks.as_mut(), novelty).await;
    drop((newest, rows));
    metrics::histogram!("scootfleet_telemetry_commit_seconds")
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(()) => {
            let points: usize = group.iter().map(|job| job.points.len()).sum();
            metrics::counter!("scootfleet_telemetry_points_total").increment(points as u64);
            for job in &group {
                state
                    .fleet
                    .apply_committed(&job.scooter_id, &job.points, job.received_at_ms);
            }
            // A task that still needs a crew: its points are answered once it has one, as
            // when dispatch takes the report after the commit.
            let (waiting, work) = match tasks.and_then(|tasks| tasks.settle(state)) {
                Some((scooters, work)) => (scooters, Some(work)),
                None => (HashSet::new(), None),
            };
            let (held, ready): (Vec<_>, Vec<_>) = group
                .into_iter()
                .partition(|job| waiting.contains(&*job.scooter_id));
            // Answered once the commit is on disk, by a task of the group's own: the writer
            // goes on to the next group meanwhile, and each request is woken once, its
            // points durable, rather than once for the commit and again for the sync.
            let state = state.clone();
            tokio::spawn(async move {
                answer(ready, durable(&state).await);
                if let Some(work) = work {
                    work.await;
                    answer(held, durable(&state).await);
                }
            });
        }
        Err(err) => {
            tracing::error!(error = %err, requests = group.len(), "telemetry commit failed");
            answer(group, Err(err.to_string()));
        }
    }
}

/// Whether any of the group's points may be stored already (see [`commit::Novelty`]): each
/// scooter's points are committed by one writer of this server at a time, and its newest
/// committed point is in the live view. Only PostgreSQL makes use of it, so the SQLite
/// writer does not work it out.
fn novelty(state: &AppState, rows: &[commit::Points<'_>]) -> Novelty {
    if state.db.backend() != Backend::Postgres {
        return Novelty::MaybeStored;
    }
    let live = state.fleet.read();
    let mut keys = HashSet::with_capacity(rows.iter().map(|row| row.points.len()).sum());
    let new = rows.iter().all(|row| {
        live.record(row.scooter_id).is_some_and(|scooter| {
            row.points.iter().all(|point| {
                point.recorded_at_ms > scooter.last_seen_ms
                    && keys.insert((row.scooter_id, point.recorded_at_ms))
            })
        })
    });
    if new {
        Novelty::New
    } else {
        Novelty::MaybeStored
    }
}

/// Whether what was committed so far is on disk (see [`crate::db::Db::durable`]).
async fn durable(state: &AppState) -> Result<(), String> {
    state
        .db
        .durable()
        .await
        .map_err(|err| format!("making the points durable: {err}"))
}

/// Tells each request of `jobs` how its points fared.
fn answer(jobs: Vec<Job>, result: Result<(), String>) {
    for job in jobs {
        let _ = job.ack.send(result.clone());
    }
}

/// What dispatch may act on in the group's own transaction: each scooter whose newest point
/// (`newest`, one per scooter) is newer than what the live view has (an older point moves
/// nothing) and either below the threshold or above threshold + margin without this server
/// knowing it armed, with the scooter's trip state.
fn dispatch_reports(state: &AppState, newest: &[(&str, &Reading)]) -> Vec<ScooterReport> {
    let config = &state.config.dispatch;
    let live = state.fleet.read();
    newest
        .iter()
        .filter_map(|&(scooter_id, point)| {
            let scooter = live.record(scooter_id)?;
            let concerns = point.range_km < config.threshold_km
                || (point.range_km >= config.threshold_km + config.margin_km
                    && !scooter.dispatch_armed);
            if !concerns || point.recorded_at_ms <= scooter.last_seen_ms {
                return None;
            }
            Some(ScooterReport {
                scooter_id: scooter_id.to_owned(),
                lat: point.lat,
                lon: point.lon,
                range_km: point.range_km,
                on_trip: matches!(scooter.state, ScooterState::OnTrip | ScooterState::Reserved),
                at: DateTime::from_timestamp_millis(point.recorded_at_ms)?,
            })
        })
        .collect()
}
