//! The life of a task as a pure state machine: each action on a task either changes it, in a
//! way [`store::apply`](super::store::apply) writes in one transaction, or is refused.

use chrono::{DateTime, Utc};

use super::TaskStatus;
use crate::clock::to_millis;

/// A battery-swap task as stored.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Task {
    pub id: String,
    pub kind: String,
    pub scooter_id: String,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    #[sqlx(try_from = "String")]
    pub status: TaskStatus,
    pub crew_id: Option<String>,
    /// When the scooter reported the low range.
    pub low_at_ms: i64,
    pub created_at_ms: i64,
    /// When the current crew got it.
    pub assigned_at_ms: Option<i64>,
    /// When a crew first got it: the end of "time to assign".
    pub first_assigned_at_ms: Option<i64>,
    pub accepted_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
    pub cancelled_at_ms: Option<i64>,
    /// The range of the fresh battery, once swapped.
    pub swapped_range_km: Option<f64>,
}

impl TryFrom<String> for TaskStatus {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        TaskStatus::parse(&value).ok_or_else(|| format!("unknown task status `{value}`"))
    }
}

/// Something done to a task.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The dispatcher offers an open task to a crew with batteries to spare.
    Offer {
        crew_id: String,
    },
    /// An operator gives the task to a crew, whatever its state or load.
    Reassign {
        crew_id: String,
    },
    Accept {
        crew_id: String,
    },
    Decline {
        crew_id: String,
    },
    /// The crew did not accept it in time since `assigned_at_ms`.
    TimeOut {
        crew_id: String,
        assigned_at_ms: i64,
    },
    /// The crew went unavailable before accepting it.
    GiveBack {
        crew_id: String,
    },
    Complete {
        crew_id: String,
        range_km: f64,
    },
    Cancel,
}

/// Why an action does not apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The task is not the acting crew's.
    NotYours,
    /// The task's state does not allow the action.
    InvalidState,
    /// The task moved on since the dispatcher looked (another server or request acted first).
    Stale,
    /// The crew has no battery to spare or is no longer available.
    CrewFull,
}

/// What an action changes beside the task itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effects {
    /// The crew that takes the task; `checked` when it must be available with a spare battery.
    pub take: Option<(String, bool)>,
    /// The crew that no longer holds the task; `battery_used` when it swapped it.
    pub release: Option<(String, bool)>,
    /// Not to be offered this task again, with the reason.
    pub decline: Option<(String, &'static str)>,
    /// The scooter may get a task again.
    pub rearm: bool,
}

/// The task after `action`, and its effects; `None` when nothing changes.
pub fn plan(
    task: &Task,
    action: &Action,
    now: DateTime<Utc>,
) -> Result<Option<(Task, Effects)>, Refusal> {
    let now = to_millis(now);
    let mut next = task.clone();
    let mut effects = Effects::default();
    let held_by = |crew_id: &str| task.crew_id.as_deref() == Some(crew_id);
    let release = |battery_used: bool| task.crew_id.clone().map(|c| (c, battery_used));
    match action {
        Action::Offer { crew_id } => {
            if task.status != TaskStatus::Open {
                return Err(Refusal::Stale);
            }
            next.status = TaskStatus::Assigned;
            next.crew_id = Some(crew_id.clone());
            next.assigned_at_ms = Some(now);
            next.first_assigned_at_ms = task.first_assigned_at_ms.or(Some(now));
            effects.take = Some((crew_id.clone(), true));
        }
        Action::Reassign { crew_id } => {
            if !task.status.is_active() {
                return Err(Refusal::InvalidState);
            }
            if held_by(crew_id) {
                return Ok(None);
            }
            next.status = TaskStatus::Assigned;
            next.crew_id = Some(crew_id.clone());
            next.assigned_at_ms = Some(now);
            next.first_assigned_at_ms = task.first_assigned_at_ms.or(Some(now));
            next.accepted_at_ms = None;
            effects.release = release(false);
            effects.take = Some((crew_id.clone(), false));
        }
        Action::Accept { crew_id } => {
            if !held_by(crew_id) {
                return Err(Refusal::NotYours);
            }
            match task.status {
                TaskStatus::Accepted => return Ok(None),
                TaskStatus::Assigned => {
                    next.status = TaskStatus::Accepted;
                    next.accepted_at_ms = Some(now);
                }
                _ => return Err(Refusal::InvalidState),
            }
        }
        Action::Decline { crew_id } => {
            if !held_by(crew_id) {
                return Err(Refusal::NotYours);
            }
            if !matches!(task.status, TaskStatus::Assigned | TaskStatus::Accepted) {
                return Err(Refusal::InvalidState);
            }
            reopen(&mut next);
            effects.release = release(false);
            effects.decline = Some((crew_id.clone(), "declined"));
        }
        Action::TimeOut {
            crew_id,
            assigned_at_ms,
        } => {
            if task.status != TaskStatus::Assigned
                || !held_by(crew_id)
                || task.assigned_at_ms != Some(*assigned_at_ms)
            {
                return Err(Refusal::Stale);
            }
            reopen(&mut next);
            effects.release = release(false);
            effects.decline = Some((crew_id.clone(), "timed_out"));
        }
        Action::GiveBack { crew_id } => {
            if task.status != TaskStatus::Assigned || !held_by(crew_id) {
                return Err(Refusal::Stale);
            }
            reopen(&mut next);
            effects.release = release(false);
        }
        Action::Complete { crew_id, range_km } => {
            if !held_by(crew_id) {
                return Err(Refusal::NotYours);
            }
            if !matches!(task.status, TaskStatus::Assigned | TaskStatus::Accepted) {
                return Err(Refusal::InvalidState);
            }
            next.status = TaskStatus::Done;
            next.accepted_at_ms = task.accepted_at_ms.or(Some(now));
            next.completed_at_ms = Some(now);
            next.swapped_range_km = Some(*range_km);
            effects.release = release(true);
            effects.rearm = true;
        }
        Action::Cancel => {
            if !task.status.is_active() {
                return Err(Refusal::InvalidState);
            }
            next.status = TaskStatus::Cancelled;
            next.cancelled_at_ms = Some(now);
            effects.release = release(false);
        }
    }
    Ok(Some((next, effects)))
}

fn reopen(task: &mut Task) {
    task.status = TaskStatus::Open;
    task.crew_id = None;
    task.assigned_at_ms = None;
    task.accepted_at_ms = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        crate::clock::from_millis(1_000_000)
    }

    fn task(status: TaskStatus, crew: Option<&str>) -> Task {
        Task {
            id: "task_1".into(),
            kind: "battery_swap".into(),
            scooter_id: "CS-0001".into(),
            lat: 48.85,
            lon: 2.35,
            range_km: 8.0,
            status,
            crew_id: crew.map(str::to_owned),
            low_at_ms: 900_000,
            created_at_ms: 900_000,
            assigned_at_ms: crew.map(|_| 950_000),
            first_assigned_at_ms: crew.map(|_| 950_000),
            accepted_at_ms: None,
            completed_at_ms: None,
            cancelled_at_ms: None,
            swapped_range_km: None,
        }
    }

    fn crew(id: &str) -> String {
        id.to_owned()
    }

    #[test]
    fn an_offer_takes_an_open_task_and_claims_a_battery() {
        let (next, effects) = plan(
            &task(TaskStatus::Open, None),
            &Action::Offer { crew_id: crew("a") },
            now(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(next.status, TaskStatus::Assigned);
        assert_eq!(next.first_assigned_at_ms, Some(1_000_000));
        assert_eq!(effects.take, Some((crew("a"), true)));
        let taken = task(TaskStatus::Assigned, Some("b"));
        assert_eq!(
            plan(&taken, &Action::Offer { crew_id: crew("a") }, now()),
            Err(Refusal::Stale)
        );
    }

    #[test]
    fn only_the_assigned_crew_acts_and_only_in_the_right_state() {
        let assigned = task(TaskStatus::Assigned, Some("a"));
        let other = Action::Accept { crew_id: crew("b") };
        assert_eq!(plan(&assigned, &other, now()), Err(Refusal::NotYours));
        let (accepted, _) = plan(&assigned, &Action::Accept { crew_id: crew("a") }, now())
            .unwrap()
            .unwrap();
        assert_eq!(accepted.status, TaskStatus::Accepted);
        assert_eq!(
            plan(&accepted, &Action::Accept { crew_id: crew("a") }, now()),
            Ok(None),
            "accepting twice changes nothing"
        );
        let done = task(TaskStatus::Done, Some("a"));
        for action in [
            Action::Accept { crew_id: crew("a") },
            Action::Decline { crew_id: crew("a") },
            Action::Complete {
                crew_id: crew("a"),
                range_km: 40.0,
            },
            Action::Cancel,
        ] {
            assert_eq!(plan(&done, &action, now()), Err(Refusal::InvalidState));
        }
    }

    #[test]
    fn declining_reopens_and_remembers_the_crew() {
        let assigned = task(TaskStatus::Assigned, Some("a"));
        let (next, effects) = plan(&assigned, &Action::Decline { crew_id: crew("a") }, now())
            .unwrap()
            .unwrap();
        assert_eq!(next.status, TaskStatus::Open);
        assert_eq!(next.crew_id, None);
        assert_eq!(
            next.first_assigned_at_ms,
            Some(950_000),
            "kept for the numbers"
        );
        assert_eq!(effects.release, Some((crew("a"), false)));
        assert_eq!(effects.decline, Some((crew("a"), "declined")));
    }

    #[test]
    fn a_timeout_applies_only_to_the_assignment_it_was_computed_for() {
        let assigned = task(TaskStatus::Assigned, Some("a"));
        let late = Action::TimeOut {
            crew_id: crew("a"),
            assigned_at_ms: 950_000,
        };
        let (_, effects) = plan(&assigned, &late, now()).unwrap().unwrap();
        assert_eq!(effects.decline, Some((crew("a"), "timed_out")));
        let reassigned = Action::TimeOut {
            crew_id: crew("a"),
            assigned_at_ms: 940_000,
        };
        assert_eq!(plan(&assigned, &reassigned, now()), Err(Refusal::Stale));
        let accepted = task(TaskStatus::Accepted, Some("a"));
        assert_eq!(plan(&accepted, &late, now()), Err(Refusal::Stale));
    }

    #[test]
    fn completing_uses_a_battery_and_rearms_the_scooter() {
        let assigned = task(TaskStatus::Assigned, Some("a"));
        let complete = Action::Complete {
            crew_id: crew("a"),
            range_km: 45.0,
        };
        let (next, effects) = plan(&assigned, &complete, now()).unwrap().unwrap();
        assert_eq!(next.status, TaskStatus::Done);
        assert_eq!(next.swapped_range_km, Some(45.0));
        assert_eq!(next.accepted_at_ms, Some(1_000_000));
        assert_eq!(effects.release, Some((crew("a"), true)));
        assert!(effects.rearm);
    }

    #[test]
    fn operators_reassign_and_cancel_active_tasks() {
        let accepted = task(TaskStatus::Accepted, Some("a"));
        let (next, effects) = plan(&accepted, &Action::Reassign { crew_id: crew("b") }, now())
            .unwrap()
            .unwrap();
        assert_eq!(
            (next.status, next.crew_id.as_deref()),
            (TaskStatus::Assigned, Some("b"))
        );
        assert_eq!(effects.release, Some((crew("a"), false)));
        assert_eq!(effects.take, Some((crew("b"), false)));
        let (cancelled, effects) = plan(&accepted, &Action::Cancel, now()).unwrap().unwrap();
        assert_eq!(cancelled.status, TaskStatus::Cancelled);
        assert_eq!(effects.release, Some((crew("a"), false)));
        assert!(!effects.rearm);
        let open = task(TaskStatus::Open, None);
        let (_, effects) = plan(&open, &Action::Cancel, now()).unwrap().unwrap();
        assert_eq!(effects.release, None);
    }
}
