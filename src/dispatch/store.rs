//! Tasks, declines and the hysteresis flag in the database.
//!
//! Every change to a task runs in one transaction that starts by writing the task's row
//! (`set status = status`): that takes the row's lock on PostgreSQL and the write lock on
//! SQLite, so the task read next is the one the change applies to, even with several servers.
//! Locks are taken task first, then crew, everywhere.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::lifecycle::{plan, Action, Effects, Refusal, Task};
use super::{OpenTask, TaskStatus};
use crate::clock::to_millis;
use crate::conn_run;
use crate::db::{Conn, Db};
use crate::db_run;
use crate::db_write;

const COLUMNS: &str = "id, kind, scooter_id, lat, lon, range_km, status, crew_id, low_at_ms, \
    created_at_ms, assigned_at_ms, first_assigned_at_ms, accepted_at_ms, completed_at_ms, \
    cancelled_at_ms, swapped_range_km";

/// A task to create for a scooter that reported a low range, and the crew the index
/// proposes for it.
#[derive(Debug)]
pub struct NewTask<'a> {
    pub id: &'a str,
    pub scooter_id: &'a str,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub low_at: DateTime<Utc>,
    pub crew_id: Option<&'a str>,
}

/// Rows per multi-row statement: 12 parameters each stays far below both engines' limits.
const ROWS_PER_STATEMENT: usize = 500;

/// Creates, in one transaction, the task of each armed scooter of `tasks` that has no
/// unfinished task, and disarms them. Answers in the order of `tasks`: the created task, or
/// `None` when the scooter already had its task or was waiting to be re-armed.
///
/// Each scooter must appear at most once. A task is created assigned to its proposed crew
/// when that crew is available with batteries to spare for every task proposed to it here;
/// otherwise it is created open.
pub async fn open_tasks_if_armed(
    db: &Db,
    tasks: &[NewTask<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<Option<Task>>, sqlx::Error> {
    db_write!(db, |pool| {
        let mut tx = pool.begin().await?;
        let created = open_tasks_on(&mut Conn::from(&mut *tx), tasks, now).await?;
        tx.commit().await?;
        Ok(created)
    })
}

/// [`open_tasks_if_armed`] inside a transaction someone else opened and commits (the
/// telemetry writer's, so that a low point and its task are stored together).
pub async fn open_tasks_on(
    conn: &mut Conn<'_>,
    tasks: &[NewTask<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<Option<Task>>, sqlx::Error> {
    let now = to_millis(now);
    // Crews in id order, scooters in id order: the order every task change locks them in.
    let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
    for crew_id in tasks.iter().filter_map(|t| t.crew_id) {
        *wanted.entry(crew_id).or_default() += 1;
    }
    let mut scooters: Vec<&str> = tasks.iter().map(|t| t.scooter_id).collect();
    scooters.sort_unstable();
    let mut created: HashMap<String, Task> = conn_run!(conn, |c| {
        let mut taken: HashSet<&str> = HashSet::new();
        for (crew_id, count) in &wanted {
            let claimed = sqlx::query(
                "update crews set tasks_held = tasks_held + $2, updated_at_ms = $3 \
                 where crew_id = $1 and available and batteries_aboard >= tasks_held + $2",
            )
            .bind(*crew_id)
            .bind(*count)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if claimed == 1 {
                taken.insert(crew_id);
            }
        }
        // One statement both checks and clears the flags: of concurrent reports, one wins.
        let mut disarmed: HashSet<String> = HashSet::new();
        for chunk in scooters.chunks(ROWS_PER_STATEMENT) {
            let mut disarm = sqlx::QueryBuilder::new(
                "insert into dispatch_scooters (scooter_id, armed, updated_at_ms) ",
            );
            disarm.push_values(chunk, |mut row, scooter_id| {
                row.push_bind(*scooter_id).push_bind(false).push_bind(now);
            });
            disarm.push(
                " on conflict (scooter_id) do update set armed = false, \
                 updated_at_ms = excluded.updated_at_ms \
                 where dispatch_scooters.armed returning scooter_id",
            );
            let ids: Vec<String> = disarm.build_query_scalar().fetch_all(&mut *c).await?;
            disarmed.extend(ids);
        }
        let rows: Vec<&NewTask<'_>> = tasks
            .iter()
            .filter(|t| disarmed.contains(t.scooter_id))
            .collect();
        let mut created: HashMap<String, Task> = HashMap::new();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::new(
                "insert into tasks (id, kind, scooter_id, lat, lon, range_km, status, crew_id, \
                 low_at_ms, created_at_ms, assigned_at_ms, first_assigned_at_ms) ",
            );
            insert.push_values(chunk, |mut row, task| {
                let crew = task.crew_id.filter(|c| taken.contains(c));
                let (status, assigned_at) = match crew {
                    Some(_) => ("assigned", Some(now)),
                    None => ("open", None),
                };
                row.push_bind(task.id)
                    .push_bind("battery_swap")
                    .push_bind(task.scooter_id)
                    .push_bind(task.lat)
                    .push_bind(task.lon)
                    .push_bind(task.range_km)
                    .push_bind(status)
                    .push_bind(crew)
                    .push_bind(to_millis(task.low_at))
                    .push_bind(now)
                    .push_bind(assigned_at)
                    .push_bind(assigned_at);
            });
            // The partial unique index refuses a second unfinished task for a scooter.
            insert.push(" on conflict do nothing returning ");
            insert.push(COLUMNS);
            let tasks: Vec<Task> = insert.build_query_as().fetch_all(&mut *c).await?;
            created.extend(tasks.into_iter().map(|t| (t.scooter_id.clone(), t)));
        }
        // Batteries claimed for tasks that were not created go back.
        for crew_id in &taken {
            let used = created
                .values()
                .filter(|t| t.crew_id.as_deref() == Some(*crew_id))
                .count();
            let unused = wanted[crew_id] - i64::try_from(used).unwrap_or(i64::MAX);
            if unused > 0 {
                sqlx::query("update crews set tasks_held = tasks_held - $2 where crew_id = $1")
                    .bind(*crew_id)
                    .bind(unused)
                    .execute(&mut *c)
                    .await?;
            }
        }
        Ok::<_, sqlx::Error>(created)
    })?;
    Ok(tasks.iter().map(|t| created.remove(t.scooter_id)).collect())
}

/// Lets the scooter get a task again.
pub async fn rearm(db: &Db, scooter_id: &str, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    db_write!(db, |pool| sqlx::query(
        "update dispatch_scooters set armed = true, updated_at_ms = $2 \
         where scooter_id = $1 and not armed"
    )
    .bind(scooter_id)
    .bind(to_millis(now))
    .execute(pool)
    .await
    .map(|_| ()))
}

/// [`rearm`] for many scooters at once, on a transaction someone else opened.
pub async fn rearm_on(
    conn: &mut Conn<'_>,
    scooter_ids: &[&str],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let now = to_millis(now);
    for chunk in scooter_ids.chunks(ROWS_PER_STATEMENT) {
        conn_run!(conn, |c| {
            let mut rearm = sqlx::QueryBuilder::new(
                "update dispatch_scooters set armed = true, updated_at_ms = ",
            );
            rearm.push_bind(now);
            rearm.push(" where not armed and scooter_id in (");
            let mut ids = rearm.separated(", ");
            for id in chunk {
                ids.push_bind(*id);
            }
            rearm.push(")");
            rearm.build().execute(&mut *c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Moves the scooter's unfinished task to where the scooter is, with its current range.
pub async fn refresh_active_task(
    db: &Db,
    scooter_id: &str,
    lat: f64,
    lon: f64,
    range_km: f64,
) -> Result<(), sqlx::Error> {
    db_write!(db, |pool| sqlx::query(
        "update tasks set lat = $2, lon = $3, range_km = $4 \
         where scooter_id = $1 and status in ('open', 'assigned', 'accepted')"
    )
    .bind(scooter_id)
    .bind(lat)
    .bind(lon)
    .bind(range_km)
    .execute(pool)
    .await
    .map(|_| ()))
}

pub async fn get(db: &Db, task_id: &str) -> Result<Option<Task>, sqlx::Error> {
    let sql = format!("select {COLUMNS} from tasks where id = $1");
    db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(task_id)
        .fetch_optional(pool)
        .await)
}

/// The scooter's unfinished task (open, assigned or accepted), if it has one.
pub async fn unfinished_for_scooter(
    db: &Db,
    scooter_id: &str,
) -> Result<Option<Task>, sqlx::Error> {
    let sql = format!(
        "select {COLUMNS} from tasks where scooter_id = $1 \
         and status in ('open', 'assigned', 'accepted') order by created_at_ms desc limit 1"
    );
    db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(scooter_id)
        .fetch_optional(pool)
        .await)
}

/// The tasks a crew holds: assigned to it or accepted by it.
pub async fn held_by(db: &Db, crew_id: &str) -> Result<Vec<Task>, sqlx::Error> {
    let sql = format!(
        "select {COLUMNS} from tasks where crew_id = $1 and status in ('assigned', 'accepted') \
         order by created_at_ms, id"
    );
    db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(crew_id)
        .fetch_all(pool)
        .await)
}

/// Tasks for operators, newest first, optionally of one status.
pub async fn list(
    db: &Db,
    status: Option<TaskStatus>,
    limit: i64,
) -> Result<Vec<Task>, sqlx::Error> {
    let sql = format!(
        "select {COLUMNS} from tasks where ($1 is null or status = $1) \
         order by created_at_ms desc, id limit $2"
    );
    let status = status.map(TaskStatus::as_str);
    db_run!(db, |pool| sqlx::query_as(&sql)
        .bind(status)
        .bind(limit)
        .fetch_all(pool)
        .await)
}

#[derive(Debug, sqlx::FromRow)]
struct OpenRow {
    id: String,
    lat: f64,
    lon: f64,
    range_km: f64,
    created_at_ms: i64,
}

impl From<OpenRow> for OpenTask {
    fn from(row: OpenRow) -> Self {
        OpenTask {
            task_id: row.id,
            lat: row.lat,
            lon: row.lon,
            range_km: row.range_km,
            created_at_ms: row.created_at_ms,
        }
    }
}

/// Open tasks, oldest first, that `crew_id` (if given) has not declined.
pub async fn open_tasks(
    db: &Db,
    not_declined_by: Option<&str>,
    limit: i64,
) -> Result<Vec<OpenTask>, sqlx::Error> {
    let rows: Vec<OpenRow> = db_run!(db, |pool| sqlx::query_as(
        "select id, lat, lon, range_km, created_at_ms from tasks t where status = 'open' \
         and not exists (select 1 from task_declines d where d.task_id = t.id and d.crew_id = $1) \
         order by created_at_ms, id limit $2"
    )
    .bind(not_declined_by.unwrap_or(""))
    .bind(limit)
    .fetch_all(pool)
    .await)?;
    Ok(rows.into_iter().map(OpenTask::from).collect())
}

/// The crews that declined or let time out each open task, as `(task_id, crew_id)`.
pub async fn declines_of_open_tasks(db: &Db) -> Result<Vec<(String, String)>, sqlx::Error> {
    db_run!(db, |pool| sqlx::query_as(
        "select d.task_id, d.crew_id from task_declines d join tasks t on t.id = d.task_id \
         where t.status = 'open'"
    )
    .fetch_all(pool)
    .await)
}

pub async fn declined_by(db: &Db, task_id: &str) -> Result<Vec<String>, sqlx::Error> {
    db_run!(db, |pool| sqlx::query_scalar(
        "select crew_id from task_declines where task_id = $1"
    )
    .bind(task_id)
    .fetch_all(pool)
    .await)
}

/// Assigned tasks not accepted since before `deadline`, as `(task_id, crew_id, assigned_at_ms)`.
pub async fn unaccepted_since(
    db: &Db,
    deadline: DateTime<Utc>,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    db_run!(db, |pool| sqlx::query_as(
        "select id, crew_id, assigned_at_ms from tasks \
         where status = 'assigned' and crew_id is not null and assigned_at_ms <= $1 \
         order by assigned_at_ms limit 1000"
    )
    .bind(to_millis(deadline))
    .fetch_all(pool)
    .await)
}

/// Number of unfinished tasks by status.
pub async fn active_counts(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    db_run!(db, |pool| sqlx::query_as(
        "select status, count(*) from tasks where status in ('open', 'assigned', 'accepted') \
         group by status"
    )
    .fetch_all(pool)
    .await)
}

/// The step times of tasks created since `since`: `(low_at, first_assigned_at, accepted_at,
/// completed_at)` in ms.
pub async fn step_times(
    db: &Db,
    since: DateTime<Utc>,
) -> Result<Vec<(i64, Option<i64>, Option<i64>, Option<i64>)>, sqlx::Error> {
    db_run!(db, |pool| sqlx::query_as(
        "select low_at_ms, first_assigned_at_ms, accepted_at_ms, completed_at_ms from tasks \
         where created_at_ms >= $1"
    )
    .bind(to_millis(since))
    .fetch_all(pool)
    .await)
}

/// One crew's part in a task's change.
enum CrewStep {
    Release { crew_id: String, battery_used: bool },
    Take { crew_id: String, checked: bool },
}

impl CrewStep {
    fn crew_id(&self) -> &str {
        match self {
            CrewStep::Release { crew_id, .. } | CrewStep::Take { crew_id, .. } => crew_id,
        }
    }
}

/// What became of an action on a task.
#[derive(Debug)]
pub enum Applied {
    /// The task before and after (the same when the action changed nothing).
    Done {
        before: Box<Task>,
        after: Box<Task>,
    },
    Refused(Refusal),
    NotFound,
}

/// Applies `action` to the task in one transaction, with all its effects on crews, declines
/// and the hysteresis flag.
pub async fn apply(
    db: &Db,
    task_id: &str,
    action: &Action,
    default_batteries: i64,
    now: DateTime<Utc>,
) -> Result<Applied, sqlx::Error> {
    let lock = format!("update tasks set status = status where id = $1 returning {COLUMNS}");
    let at = to_millis(now);
    db_write!(db, |pool| {
        let mut tx = pool.begin().await?;
        let Some(before): Option<Task> = sqlx::query_as(&lock)
            .bind(task_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.rollback().await?;
            return Ok(Applied::NotFound);
        };
        let (after, effects) = match plan(&before, action, now) {
            Err(refusal) => {
                tx.rollback().await?;
                return Ok(Applied::Refused(refusal));
            }
            Ok(None) => {
                tx.commit().await?;
                let after = Box::new(before.clone());
                return Ok(Applied::Done {
                    before: Box::new(before),
                    after,
                });
            }
            Ok(Some(change)) => change,
        };
        let Effects {
            take,
            release,
            decline,
            rearm,
        } = effects;
        // Crews' rows are locked in id order, so two reassignments never wait on each other.
        let mut steps: Vec<CrewStep> = release
            .into_iter()
            .map(|(crew_id, battery_used)| CrewStep::Release {
                crew_id,
                battery_used,
            })
            .chain(
                take.into_iter()
                    .map(|(crew_id, checked)| CrewStep::Take { crew_id, checked }),
            )
            .collect();
        steps.sort_by(|a, b| a.crew_id().cmp(b.crew_id()));
        for step in &steps {
            match step {
                CrewStep::Release {
                    crew_id,
                    battery_used,
                } => {
                    sqlx::query(
                        "update crews set \
                         tasks_held = case when tasks_held > 0 then tasks_held - 1 else 0 end, \
                         batteries_aboard = case when $2 and batteries_aboard > 0 \
                             then batteries_aboard - 1 else batteries_aboard end, \
                         updated_at_ms = $3 \
                         where crew_id = $1",
                    )
                    .bind(crew_id)
                    .bind(*battery_used)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                CrewStep::Take { crew_id, checked } => {
                    let taken = if *checked {
                        sqlx::query(
                            "update crews set tasks_held = tasks_held + 1, updated_at_ms = $2 \
                             where crew_id = $1 and available and batteries_aboard > tasks_held",
                        )
                        .bind(crew_id)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                    } else {
                        sqlx::query(
                            "insert into crews (crew_id, available, batteries_aboard, tasks_held, updated_at_ms) \
                             values ($1, false, $2, 1, $3) \
                             on conflict (crew_id) do update set tasks_held = crews.tasks_held + 1, \
                             updated_at_ms = excluded.updated_at_ms",
                        )
                        .bind(crew_id)
                        .bind(default_batteries)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                    };
                    if taken == 0 {
                        tx.rollback().await?;
                        return Ok(Applied::Refused(Refusal::CrewFull));
                    }
                }
            }
        }
        if let Some((crew_id, reason)) = &decline {
            sqlx::query(
                "insert into task_declines (task_id, crew_id, reason, at_ms) values ($1, $2, $3, $4) \
                 on conflict (task_id, crew_id) do update set reason = excluded.reason, at_ms = excluded.at_ms",
            )
            .bind(task_id)
            .bind(crew_id)
            .bind(*reason)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        if rearm {
            sqlx::query(
                "update dispatch_scooters set armed = true, updated_at_ms = $2 where scooter_id = $1",
            )
            .bind(&after.scooter_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "update tasks set status = $2, crew_id = $3, assigned_at_ms = $4, \
             first_assigned_at_ms = $5, accepted_at_ms = $6, completed_at_ms = $7, \
             cancelled_at_ms = $8, swapped_range_km = $9 where id = $1",
        )
        .bind(task_id)
        .bind(after.status.as_str())
        .bind(&after.crew_id)
        .bind(after.assigned_at_ms)
        .bind(after.first_assigned_at_ms)
        .bind(after.accepted_at_ms)
        .bind(after.completed_at_ms)
        .bind(after.cancelled_at_ms)
        .bind(after.swapped_range_km)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Applied::Done {
            before: Box::new(before),
            after: Box::new(after),
        })
    })
}
