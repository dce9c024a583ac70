//! Group commit of telemetry: requests hand their points to one writer task, which stores
//! everything that queued up meanwhile in a single transaction and then answers each one.
//! A request's 202 therefore comes after its points are committed, at the cost of one
//! transaction per group rather than per request.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::{store, Fleet, Reading};
use crate::db::Db;

/// The most points one transaction takes; more wait for the next one.
const MAX_GROUP_POINTS: usize = 5000;

/// One request's valid points, waiting to be stored.
#[derive(Debug)]
pub struct Job {
    pub scooter_id: Arc<str>,
    pub points: Vec<Reading>,
    pub received_at_ms: i64,
    /// Told once the points are committed, or why they are not.
    pub ack: oneshot::Sender<Result<(), String>>,
}

/// Runs until shutdown, then stores whatever is still queued before returning.
pub async fn run_writer(
    fleet: Arc<Fleet>,
    db: Db,
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
        commit(&fleet, &db, group).await;
    }
    inbox.close();
    while let Some(first) = inbox.recv().await {
        let group = gather(first, &mut inbox);
        commit(&fleet, &db, group).await;
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

async fn commit(fleet: &Fleet, db: &Db, group: Vec<Job>) {
    let started = std::time::Instant::now();
    let rows: Vec<store::Points<'_>> = group
        .iter()
        .map(|job| store::Points {
            scooter_id: &job.scooter_id,
            points: &job.points,
            received_at_ms: job.received_at_ms,
        })
        .collect();
    let result = store::commit_points(db, &rows).await;
    drop(rows);
    metrics::histogram!("scootfleet_telemetry_commit_seconds")
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(()) => {
            let points: usize = group.iter().map(|job| job.points.len()).sum();
            metrics::counter!("scootfleet_telemetry_points_total").increment(points as u64);
            for job in group {
                fleet.apply_committed(&job.scooter_id, &job.points, job.received_at_ms);
                let _ = job.ack.send(Ok(()));
            }
        }
        Err(err) => {
            tracing::error!(error = %err, requests = group.len(), "telemetry commit failed");
            let cause = err.to_string();
            for job in group {
                let _ = job.ack.send(Err(cause.clone()));
            }
        }
    }
}
