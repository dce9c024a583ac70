//! Assignment: tasks go to the nearest available crew with a battery to spare that has not
//! declined them, and a crew that becomes available receives the most urgent open tasks
//! near it.
//!
//! The crew index in memory proposes; the database disposes: taking a crew's battery is a
//! conditional update, so two servers never promise the same battery twice.

use std::collections::HashSet;

use super::lifecycle::{Action, Refusal, Task};
use super::store::{self, Applied};
use super::{tasks_for_crew, TaskStatus};
use crate::app::AppState;
use crate::crews::{self, CrewState};
use crate::error::Error;

/// Crews tried for one task before it is left open for the next sweep.
const MAX_CREWS_TRIED: usize = 16;

/// What became of offering a task to a crew.
#[derive(Debug, PartialEq, Eq)]
enum Offered {
    Yes,
    /// The crew turned out to have no battery to spare, or not to be available.
    CrewCannot,
    /// The task is no longer open.
    TaskMoved,
}

/// Offers an open task to the nearest crew that can take it, skipping `declined` crews.
/// Returns the crew that got it.
pub async fn to_nearest_crew(
    state: &AppState,
    task_id: &str,
    (lat, lon): (f64, f64),
    declined: &[String],
) -> Result<Option<String>, Error> {
    let mut tried: HashSet<String> = HashSet::new();
    while tried.len() < MAX_CREWS_TRIED {
        let candidate = state
            .crews
            .read()
            .nearest(lat, lon, |id| {
                !tried.contains(id) && !declined.iter().any(|d| d == id)
            })
            .map(|crew| crew.crew_id.clone());
        let Some(crew_id) = candidate else {
            return Ok(None);
        };
        match offer(state, task_id, &crew_id).await? {
            Offered::Yes => return Ok(Some(crew_id)),
            Offered::TaskMoved => return Ok(None),
            Offered::CrewCannot => {
                tried.insert(crew_id);
            }
        }
    }
    Ok(None)
}

async fn offer(state: &AppState, task_id: &str, crew_id: &str) -> Result<Offered, Error> {
    let action = Action::Offer {
        crew_id: crew_id.to_owned(),
    };
    match apply(state, task_id, &action).await? {
        Applied::Done { before, after } => {
            if before.first_assigned_at_ms.is_none() {
                assigned(&after, crew_id);
            } else {
                tracing::info!(task_id, crew_id, "task assigned");
            }
            Ok(Offered::Yes)
        }
        Applied::Refused(Refusal::CrewFull) => {
            learn_crew(state, crew_id).await?;
            Ok(Offered::CrewCannot)
        }
        Applied::Refused(_) | Applied::NotFound => Ok(Offered::TaskMoved),
    }
}

/// Counts and logs a task's first assignment.
pub fn assigned(task: &Task, crew_id: &str) {
    if let Some(at) = task.first_assigned_at_ms {
        metrics::histogram!("dispatch_time_to_assign_seconds")
            .record(seconds_between(task.low_at_ms, at));
    }
    tracing::info!(task_id = %task.id, crew_id, "task assigned");
}

/// The index was behind about a crew that could not take a task: learn its real state.
pub async fn learn_crew(state: &AppState, crew_id: &str) -> Result<(), Error> {
    if let Some(crew) = crews::store::get(&state.db, crew_id).await? {
        state.crews.write().upsert(crew);
    }
    Ok(())
}

/// Applies an action and keeps the crew index's load in step with it.
pub async fn apply(state: &AppState, task_id: &str, action: &Action) -> Result<Applied, Error> {
    let applied = store::apply(
        &state.db,
        task_id,
        action,
        state.config.dispatch.default_batteries,
        state.clock.now(),
    )
    .await?;
    if let Applied::Done { before, after } = &applied {
        if before.crew_id != after.crew_id || before.status != after.status {
            let mut index = state.crews.write();
            if let Some(crew) = before.crew_id.as_deref().filter(|_| holds(before)) {
                index.adjust_held(crew, -1);
            }
            if let Some(crew) = after.crew_id.as_deref().filter(|_| holds(after)) {
                index.adjust_held(crew, 1);
            }
        }
    }
    Ok(applied)
}

fn holds(task: &Task) -> bool {
    matches!(task.status, TaskStatus::Assigned | TaskStatus::Accepted)
}

/// Seconds from `from_ms` to `to_ms`, never negative.
pub fn seconds_between(from_ms: i64, to_ms: i64) -> f64 {
    (to_ms - from_ms).max(0) as f64 / 1000.0
}

/// Passes a task that just became open again to the next nearest crew that has not declined it.
pub async fn pass_on(state: &AppState, task: &Task) -> Result<Option<String>, Error> {
    let declined = store::declined_by(&state.db, &task.id).await?;
    to_nearest_crew(state, &task.id, (task.lat, task.lon), &declined).await
}

/// Reacts to a crew's new position, availability or van: an unavailable crew hands back the
/// tasks it has not accepted; an available one receives the most urgent open tasks near it.
pub async fn crew_changed(state: &AppState, crew: &CrewState) -> Result<(), Error> {
    if !crew.available {
        for task in store::held_by(&state.db, &crew.crew_id).await? {
            if task.status != TaskStatus::Assigned {
                continue;
            }
            let action = Action::GiveBack {
                crew_id: crew.crew_id.clone(),
            };
            if let Applied::Done { after, .. } = apply(state, &task.id, &action).await? {
                pass_on(state, &after).await?;
            }
        }
        return Ok(());
    }
    let Some(position) = crew.position else {
        return Ok(());
    };
    if crew.spare() <= 0 {
        return Ok(());
    }
    let config = &state.config.dispatch;
    let open = store::open_tasks(&state.db, Some(&crew.crew_id), 1_000).await?;
    let picked = tasks_for_crew(
        position,
        crew.spare(),
        config.offer_radius_km * 1000.0,
        state.config.rental_floor_km,
        open,
    );
    for task in picked {
        if offer(state, &task.task_id, &crew.crew_id).await? == Offered::CrewCannot {
            break;
        }
    }
    Ok(())
}
