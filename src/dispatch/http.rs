//! `/v1/crew/tasks…` for crews and `/v1/ops/tasks…` for operators.
//!
//! A crew acting on a task that is not its own gets 404 `not_found`, as for a task that does
//! not exist: crews do not learn about each other's tasks. A task not in a state that allows
//! the action gets 409 `invalid_task_state`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::assign::{self, seconds_between};
use super::lifecycle::{Action, Refusal, Task};
use super::report::CompletedSwap;
use super::store::{self, Applied};
use super::tour::tour;
use super::{apply_swap_to_fleet, TaskStatus};
use crate::app::AppState;
use crate::auth::{CrewMember, Operator};
use crate::clock::{from_millis, rfc3339};
use crate::crews;
use crate::error::{ApiJson, ApiPath, ApiQuery, Error, ProblemDocument};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(crew_tasks))
        .routes(routes!(accept))
        .routes(routes!(decline))
        .routes(routes!(complete))
        .routes(routes!(list_tasks))
        .routes(routes!(reassign))
        .routes(routes!(cancel))
}

/// A battery-swap task.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    pub task_id: String,
    /// Always `battery_swap`.
    pub kind: String,
    pub scooter_id: String,
    pub lat: f64,
    pub lon: f64,
    /// The scooter's range as last reported while the task was open.
    pub range_km: f64,
    pub status: TaskStatus,
    pub created_at: String,
    /// The crew holding the task, if any.
    pub crew_id: Option<String>,
    /// When the scooter reported the low range.
    pub low_range_at: String,
    pub assigned_at: Option<String>,
    pub accepted_at: Option<String>,
    pub completed_at: Option<String>,
    pub cancelled_at: Option<String>,
    /// The range of the fresh battery, once swapped.
    pub swapped_range_km: Option<f64>,
    /// In a crew's list: the stop's place in the tour from the crew's position (1 first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tour_position: Option<usize>,
}

impl From<Task> for TaskView {
    fn from(task: Task) -> Self {
        let time = |ms: Option<i64>| ms.map(|ms| rfc3339(from_millis(ms)));
        TaskView {
            task_id: task.id,
            kind: task.kind,
            scooter_id: task.scooter_id,
            lat: task.lat,
            lon: task.lon,
            range_km: task.range_km,
            status: task.status,
            created_at: rfc3339(from_millis(task.created_at_ms)),
            crew_id: task.crew_id,
            low_range_at: rfc3339(from_millis(task.low_at_ms)),
            assigned_at: time(task.assigned_at_ms),
            accepted_at: time(task.accepted_at_ms),
            completed_at: time(task.completed_at_ms),
            cancelled_at: time(task.cancelled_at_ms),
            swapped_range_km: task.swapped_range_km,
            tour_position: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<TaskView>,
}

/// The tasks assigned to or accepted by this crew, in tour order from its last reported
/// position (nearest neighbour improved by 2-opt); `tour_position` numbers the stops.
#[utoipa::path(
    get, path = "/v1/crew/tasks", tag = "dispatch", security(("bearer" = [])),
    responses(
        (status = 200, body = TaskList),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
pub async fn crew_tasks(
    State(state): State<AppState>,
    crew: CrewMember,
) -> Result<ApiJson<TaskList>, Error> {
    let tasks = store::held_by(&state.db, &crew.id).await?;
    let start = crews::store::get(&state.db, &crew.id)
        .await?
        .and_then(|c| c.position)
        .or_else(|| tasks.first().map(|t| (t.lat, t.lon)));
    let stops: Vec<(f64, f64)> = tasks.iter().map(|t| (t.lat, t.lon)).collect();
    let order = start.map(|s| tour(s, &stops)).unwrap_or_default();
    let mut slots: Vec<Option<Task>> = tasks.into_iter().map(Some).collect();
    let tasks = order
        .into_iter()
        .enumerate()
        .filter_map(|(place, i)| {
            let mut view = TaskView::from(slots.get_mut(i)?.take()?);
            view.tour_position = Some(place + 1);
            Some(view)
        })
        .collect();
    Ok(ApiJson(TaskList { tasks }))
}

fn task_not_found() -> Error {
    Error::not_found("not_found", "There is no such task among yours.")
}

fn invalid_state(task: Option<&Task>) -> Error {
    let detail = match task.map(|t| t.status) {
        Some(TaskStatus::Done) => "This task is already done.",
        Some(TaskStatus::Cancelled) => "This task was cancelled.",
        Some(TaskStatus::Open) => "This task is waiting for a crew.",
        _ => "This task cannot do that in its current state.",
    };
    Error::conflict("invalid_task_state", detail)
}

/// Runs a crew's action on a task, mapping refusals to the crew-facing answers.
async fn crew_act(state: &AppState, task_id: &str, action: Action) -> Result<(Task, Task), Error> {
    match assign::apply(state, task_id, &action).await? {
        Applied::Done { before, after } => Ok((*before, *after)),
        Applied::NotFound | Applied::Refused(Refusal::NotYours) => Err(task_not_found()),
        Applied::Refused(_) => {
            let current = store::get(&state.db, task_id).await?;
            Err(invalid_state(current.as_ref()))
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TaskPath {
    pub task_id: String,
}

/// Accepts a task assigned to this crew (accepting it again changes nothing).
#[utoipa::path(
    post, path = "/v1/crew/tasks/{task_id}/accept", tag = "dispatch", security(("bearer" = [])),
    params(TaskPath),
    responses(
        (status = 200, body = TaskView),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 404, description = "`not_found`: no such task, or not this crew's", body = ProblemDocument),
        (status = 409, description = "`invalid_task_state`", body = ProblemDocument),
    )
)]
pub async fn accept(
    State(state): State<AppState>,
    crew: CrewMember,
    ApiPath(path): ApiPath<TaskPath>,
) -> Result<ApiJson<TaskView>, Error> {
    let action = Action::Accept { crew_id: crew.id };
    let (before, after) = crew_act(&state, &path.task_id, action).await?;
    if before.accepted_at_ms.is_none() {
        if let Some(at) = after.accepted_at_ms {
            metrics::histogram!("dispatch_time_to_accept_seconds")
                .record(seconds_between(after.low_at_ms, at));
        }
    }
    Ok(ApiJson(after.into()))
}

/// Declines a task held by this crew: it goes to the next nearest crew that has not declined it.
#[utoipa::path(
    post, path = "/v1/crew/tasks/{task_id}/decline", tag = "dispatch", security(("bearer" = [])),
    params(TaskPath),
    responses(
        (status = 200, description = "The task as the decline left it: open, no longer this crew's", body = TaskView),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 404, description = "`not_found`: no such task, or not this crew's", body = ProblemDocument),
        (status = 409, description = "`invalid_task_state`", body = ProblemDocument),
    )
)]
pub async fn decline(
    State(state): State<AppState>,
    crew: CrewMember,
    ApiPath(path): ApiPath<TaskPath>,
) -> Result<ApiJson<TaskView>, Error> {
    let action = Action::Decline {
        crew_id: crew.id.clone(),
    };
    let (_, after) = crew_act(&state, &path.task_id, action).await?;
    tracing::info!(task_id = %after.id, crew_id = %crew.id, "task declined; passing it on");
    assign::pass_on(&state, &after).await?;
    Ok(ApiJson(after.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// Range of the fresh battery, in km.
    pub range_km: f64,
}

/// The most range a battery may be said to give, in km.
const MAX_RANGE_KM: f64 = 1_000.0;

/// Marks the swap done: the crew's van has one battery less and the scooter its new range.
/// A task assigned but not yet accepted may be completed directly (it counts as accepted).
#[utoipa::path(
    post, path = "/v1/crew/tasks/{task_id}/complete", tag = "dispatch", security(("bearer" = [])),
    params(TaskPath),
    request_body = CompleteRequest,
    responses(
        (status = 200, body = TaskView),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 404, description = "`not_found`: no such task, or not this crew's", body = ProblemDocument),
        (status = 409, description = "`invalid_task_state`", body = ProblemDocument),
    )
)]
pub async fn complete(
    State(state): State<AppState>,
    crew: CrewMember,
    ApiPath(path): ApiPath<TaskPath>,
    ApiJson(body): ApiJson<CompleteRequest>,
) -> Result<ApiJson<TaskView>, Error> {
    if !body.range_km.is_finite() || body.range_km <= 0.0 || body.range_km > MAX_RANGE_KM {
        return Err(Error::invalid(format!(
            "range_km must be a number above 0 and at most {MAX_RANGE_KM}."
        )));
    }
    let action = Action::Complete {
        crew_id: crew.id.clone(),
        range_km: body.range_km,
    };
    let (before, after) = crew_act(&state, &path.task_id, action).await?;
    if let Some(done_at) = after.completed_at_ms {
        if before.accepted_at_ms.is_none() {
            metrics::histogram!("dispatch_time_to_accept_seconds")
                .record(seconds_between(after.low_at_ms, done_at));
        }
        metrics::histogram!("dispatch_time_to_complete_seconds")
            .record(seconds_between(after.low_at_ms, done_at));
        apply_swap_to_fleet(
            &state,
            &CompletedSwap {
                task_id: after.id.clone(),
                scooter_id: after.scooter_id.clone(),
                crew_id: crew.id,
                range_km: body.range_km,
                at: from_millis(done_at),
            },
        )
        .await?;
    }
    Ok(ApiJson(after.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    /// `open`, `assigned`, `accepted`, `done` or `cancelled`; all when absent.
    pub status: Option<String>,
    /// At most this many, newest first (default 500, at most 5000).
    pub limit: Option<i64>,
}

/// Tasks, newest first, with the crew holding each.
#[utoipa::path(
    get, path = "/v1/ops/tasks", tag = "dispatch", security(("bearer" = [])),
    params(TaskQuery),
    responses(
        (status = 200, body = TaskList),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
pub async fn list_tasks(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<TaskQuery>,
) -> Result<ApiJson<TaskList>, Error> {
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
            Error::invalid("status must be one of open, assigned, accepted, done, cancelled.")
        })?),
    };
    let limit = query.limit.unwrap_or(500);
    if !(1..=5_000).contains(&limit) {
        return Err(Error::invalid("limit must be between 1 and 5000."));
    }
    let tasks = store::list(&state.db, status, limit).await?;
    Ok(ApiJson(TaskList {
        tasks: tasks.into_iter().map(TaskView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignRequest {
    pub crew_id: String,
}

fn ops_task_not_found() -> Error {
    Error::not_found("not_found", "There is no task with this id.")
}

/// Gives an unfinished task to a crew, whatever its load; it must accept it again.
#[utoipa::path(
    post, path = "/v1/ops/tasks/{task_id}/assign", tag = "dispatch", security(("bearer" = [])),
    params(TaskPath),
    request_body = ReassignRequest,
    responses(
        (status = 200, body = TaskView),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 404, description = "`not_found` (task) or `crew_not_found`", body = ProblemDocument),
        (status = 409, description = "`invalid_task_state`: done or cancelled", body = ProblemDocument),
    )
)]
pub async fn reassign(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(path): ApiPath<TaskPath>,
    ApiJson(body): ApiJson<ReassignRequest>,
) -> Result<ApiJson<TaskView>, Error> {
    if !crews::store::is_crew_account(&state.db, &body.crew_id).await? {
        return Err(crews::http::crew_not_found());
    }
    let action = Action::Reassign {
        crew_id: body.crew_id,
    };
    ops_act(&state, &path.task_id, action).await
}

/// Cancels an unfinished task. The scooter gets no new task until its battery is swapped or
/// its range rises above threshold + margin.
#[utoipa::path(
    post, path = "/v1/ops/tasks/{task_id}/cancel", tag = "dispatch", security(("bearer" = [])),
    params(TaskPath),
    responses(
        (status = 200, body = TaskView),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 404, description = "`not_found`", body = ProblemDocument),
        (status = 409, description = "`invalid_task_state`: done or cancelled", body = ProblemDocument),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(path): ApiPath<TaskPath>,
) -> Result<ApiJson<TaskView>, Error> {
    ops_act(&state, &path.task_id, Action::Cancel).await
}

async fn ops_act(
    state: &AppState,
    task_id: &str,
    action: Action,
) -> Result<ApiJson<TaskView>, Error> {
    match assign::apply(state, task_id, &action).await? {
        Applied::Done { after, .. } => Ok(ApiJson((*after).into())),
        Applied::NotFound => Err(ops_task_not_found()),
        Applied::Refused(_) => {
            let current = store::get(&state.db, task_id).await?;
            Err(invalid_state(current.as_ref()))
        }
    }
}
