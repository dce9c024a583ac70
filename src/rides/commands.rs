//! Commands for scooters: `unlock` when a ride starts, `lock` when it ends, `speed_limit`
//! when a riding scooter enters or leaves a slow zone. Scooters fetch their pending
//! commands with `GET /v1/device/commands` and acknowledge each one; an `unlock` that is
//! not acknowledged in time cancels its ride, unbilled. When an MQTT broker is configured,
//! every new command is also published to `scootfleet/scooters/{scooter_id}/commands`
//! (QoS 1, the same JSON as the polling answer); a command stays pending until the scooter
//! acknowledges it over HTTP, so a lost message is still found by polling.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::db::{raw, Conn, Db};
use crate::error::Error;
use crate::{conn_run, db_run, db_write};

/// What a scooter is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    Unlock,
    Lock,
    SpeedLimit,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Unlock => "unlock",
            CommandKind::Lock => "lock",
            CommandKind::SpeedLimit => "speed_limit",
        }
    }
}

/// A command as the scooter receives it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Command {
    pub command_id: String,
    /// `unlock`, `lock` or `speed_limit`.
    pub kind: String,
    /// For `speed_limit`: `{"max_speed_kmh": 10}` (or `null` to lift the limit).
    #[schema(value_type = Object)]
    pub payload: Value,
    pub status: String,
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct CommandRow {
    id: String,
    kind: String,
    payload: String,
    status: String,
    created_at_ms: i64,
}

const COMMAND_COLUMNS: &str = "id, kind, payload, status, created_at_ms";

impl CommandRow {
    /// A row of [`COMMAND_COLUMNS`] read on a SQLite handle.
    fn from_raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(CommandRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            payload: r.get(2)?,
            status: r.get(3)?,
            created_at_ms: r.get(4)?,
        })
    }
}

impl From<CommandRow> for Command {
    fn from(row: CommandRow) -> Self {
        Command {
            command_id: row.id,
            kind: row.kind,
            payload: serde_json::from_str(&row.payload).unwrap_or(Value::Null),
            status: row.status,
            created_at: crate::clock::rfc3339(crate::clock::from_millis(row.created_at_ms)),
        }
    }
}

/// A pending command: `$1` id, `$2` scooter, `$3` ride, `$4` kind, `$5` payload, `$6` time.
///
/// A scooter carries its commands out in the order they were given, and `pending` lists
/// them by `created_at_ms`: a command queued in the same millisecond as an earlier one
/// still pending for the same scooter (an unlock and its lock, on a 0 s ride) is stamped a
/// millisecond after it, so that the order holds. A chained statement may add a `having`
/// condition: the `select` is one aggregate row.
pub(crate) const QUEUE: &str = "insert into device_commands \
     (id, scooter_id, ride_id, kind, payload, status, created_at_ms) \
     select $1, $2, $3, $4, $5, 'pending', \
         case when max(created_at_ms) >= $6 then max(created_at_ms) + 1 else $6 end \
     from device_commands where scooter_id = $2 and status = 'pending'";

/// A command about to be queued with [`QUEUE`].
#[derive(Debug)]
pub struct NewCommand<'a> {
    pub id: String,
    pub scooter_id: &'a str,
    pub ride_id: Option<&'a str>,
    pub kind: &'static str,
    pub payload: String,
    pub at_ms: i64,
}

impl<'a> NewCommand<'a> {
    pub fn new(
        scooter_id: &'a str,
        ride_id: Option<&'a str>,
        kind: CommandKind,
        payload: &Value,
        at_ms: i64,
    ) -> Self {
        NewCommand {
            id: crate::ids::new_id("cmd"),
            scooter_id,
            ride_id,
            kind: kind.as_str(),
            payload: payload.to_string(),
            at_ms,
        }
    }

    /// The values of [`QUEUE`], in order.
    pub fn args(&self) -> [&dyn rusqlite::ToSql; 6] {
        [
            &self.id,
            &self.scooter_id,
            &self.ride_id,
            &self.kind,
            &self.payload,
            &self.at_ms,
        ]
    }

    /// [`QUEUE`]'s values bound to `query`, in order.
    pub fn bind<'q, DB: sqlx::Database>(
        &'q self,
        query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        query
            .bind(self.id.as_str())
            .bind(self.scooter_id)
            .bind(self.ride_id)
            .bind(self.kind)
            .bind(self.payload.as_str())
            .bind(self.at_ms)
    }
}

/// Queues a command inside the caller's transaction; returns its id.
pub async fn queue_on(
    conn: &mut Conn<'_>,
    scooter_id: &str,
    ride_id: Option<&str>,
    kind: CommandKind,
    payload: &Value,
    now_ms: i64,
) -> Result<String, sqlx::Error> {
    let command = NewCommand::new(scooter_id, ride_id, kind, payload, now_ms);
    queue_new_on(conn, &command).await?;
    Ok(command.id)
}

/// Queues `command` inside the caller's transaction.
pub async fn queue_new_on(
    conn: &mut Conn<'_>,
    command: &NewCommand<'_>,
) -> Result<(), sqlx::Error> {
    conn_run!(conn, |c| command
        .bind(sqlx::query(QUEUE))
        .execute(&mut *c)
        .await
        .map(|_| ()))
}

/// [`queue_on`] on a SQLite handle.
pub fn queue_raw(c: &rusqlite::Connection, command: &NewCommand<'_>) -> rusqlite::Result<()> {
    raw::execute(c, QUEUE, &command.args()).map(|_| ())
}

/// Queues a command on its own.
pub async fn queue(
    db: &Db,
    scooter_id: &str,
    ride_id: Option<&str>,
    kind: CommandKind,
    payload: &Value,
    now_ms: i64,
) -> Result<String, Error> {
    Ok(db_write!(db, |pool| {
        let mut conn = pool.acquire().await?;
        queue_on(
            &mut Conn::from(&mut *conn),
            scooter_id,
            ride_id,
            kind,
            payload,
            now_ms,
        )
        .await
    })?)
}

/// A scooter's commands still waiting for its acknowledgement, oldest first.
pub async fn pending(db: &Db, scooter_id: &str) -> Result<Vec<Command>, Error> {
    let rows: Vec<CommandRow> = db_run!(db, |pool| sqlx::query_as(
        "select id, kind, payload, status, created_at_ms from device_commands \
         where scooter_id = $1 and status = 'pending' order by created_at_ms, id"
    )
    .bind(scooter_id)
    .fetch_all(pool)
    .await)?;
    Ok(rows.into_iter().map(Command::from).collect())
}

/// What acknowledging a command did.
#[derive(Debug)]
pub enum Ack {
    /// Acknowledged now, or already before (acknowledging twice is harmless).
    Acked(Command),
    /// Too late: the command expired (an unlock whose ride was cancelled).
    Expired,
    Unknown,
}

pub async fn ack(db: &Db, scooter_id: &str, command_id: &str, now_ms: i64) -> Result<Ack, Error> {
    let select =
        format!("select {COMMAND_COLUMNS} from device_commands where id = $1 and scooter_id = $2");
    let row: Option<CommandRow> = match db {
        // Both statements in one hand-off to the writer's handle.
        Db::Sqlite { write, .. } => {
            let mut conn = write.acquire().await?;
            raw::on_handle(&mut conn, |c| {
                raw::execute(c, ACK, &[&now_ms, &command_id, &scooter_id])?;
                raw::query_row(
                    c,
                    &select,
                    &[&command_id, &scooter_id],
                    CommandRow::from_raw,
                )
            })
            .await?
        }
        Db::Postgres(pool) => {
            sqlx::query(ACK)
                .bind(now_ms)
                .bind(command_id)
                .bind(scooter_id)
                .execute(pool)
                .await?;
            sqlx::query_as(&select)
                .bind(command_id)
                .bind(scooter_id)
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(match row {
        None => Ack::Unknown,
        Some(row) if row.status == "expired" => Ack::Expired,
        Some(row) => Ack::Acked(row.into()),
    })
}

/// Acknowledges a pending command: `$1` time, `$2` command, `$3` scooter.
const ACK: &str = "update device_commands set status = 'acked', acked_at_ms = $1 \
     where id = $2 and scooter_id = $3 and status = 'pending'";

/// Unlock commands still unacknowledged that were queued before `cutoff_ms`, with their ride.
pub async fn overdue_unlocks(db: &Db, cutoff_ms: i64) -> Result<Vec<(String, String)>, Error> {
    Ok(db_run!(db, |pool| sqlx::query_as(
        "select id, ride_id from device_commands where kind = 'unlock' and status = 'pending' \
         and created_at_ms < $1 and ride_id is not null order by created_at_ms limit 500"
    )
    .bind(cutoff_ms)
    .fetch_all(pool)
    .await)?)
}

/// Whether the ride's unlock was acknowledged by its scooter.
pub async fn unlock_acknowledged(db: &Db, ride_id: &str) -> Result<bool, Error> {
    let n: i64 = db_run!(db, |pool| {
        sqlx::query_scalar(
        "select count(*) from device_commands where ride_id = $1 and kind = 'unlock' and status = 'acked'"
    )
    .bind(ride_id)
    .fetch_one(pool)
    .await
    })?;
    Ok(n > 0)
}

/// Expires a pending command inside the caller's transaction; false when it was acked first.
pub async fn expire_on(conn: &mut Conn<'_>, command_id: &str) -> Result<bool, sqlx::Error> {
    conn_run!(conn, |c| {
        sqlx::query(
            "update device_commands set status = 'expired' where id = $1 and status = 'pending'",
        )
        .bind(command_id)
        .execute(&mut *c)
        .await
        .map(|done| done.rows_affected() == 1)
    })
}

/// The MQTT topic a scooter's commands are published on.
pub fn topic(scooter_id: &str) -> String {
    format!("scootfleet/scooters/{scooter_id}/commands")
}

/// Claims up to `limit` pending commands nobody has published yet, marking them published
/// at `now_ms`. A command is claimed by one server only, even when several run at once.
pub async fn claim_unpublished(
    db: &Db,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<(String, Command)>, Error> {
    let rows: Vec<(String, String, String, String, String, i64)> = db_write!(db, |pool| {
        sqlx::query_as(
            "update device_commands set published_at_ms = $1 \
             where published_at_ms is null and status = 'pending' and id in \
               (select id from device_commands where published_at_ms is null and status = 'pending' \
                order by created_at_ms limit $2) \
             returning scooter_id, id, kind, payload, status, created_at_ms",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(scooter_id, id, kind, payload, status, created_at_ms)| {
            let command = Command::from(CommandRow {
                id,
                kind,
                payload,
                status,
                created_at_ms,
            });
            (scooter_id, command)
        })
        .collect())
}

/// Publishes the commands queued since the last call on `client`'s broker.
pub async fn publish_pending(state: &crate::app::AppState, client: &rumqttc::AsyncClient) {
    let now_ms = state.clock.now().timestamp_millis();
    let claimed = match claim_unpublished(&state.db, now_ms, 500).await {
        Ok(claimed) => claimed,
        Err(err) => {
            tracing::error!(error = ?err, "claiming commands to publish");
            return;
        }
    };
    for (scooter_id, command) in claimed {
        let payload = match serde_json::to_vec(&command) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(error = %err, "encoding a command");
                continue;
            }
        };
        if let Err(err) = client
            .publish(
                topic(&scooter_id),
                rumqttc::QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
        {
            // The command stays pending: the scooter still finds it by polling.
            tracing::warn!(error = %err, %scooter_id, "publishing a command over MQTT");
        }
    }
}
