//! A ride's write transactions on PostgreSQL, in as few round trips as their rules allow:
//! the stores' statements chained into one ([`crate::db::chain`]) wherever none depends on
//! another's writes. An unlock that ends no reservation is one statement; an end is the
//! wallet's lock, its sums (read after the lock, so a statement of their own), and one
//! statement for all the rest. Anything else goes through [`super::service`]'s transactions
//! a statement at a time.

use sqlx::postgres::PgPool;

use super::commands::{self, QUEUE};
use super::service::{ride_not_active, Finish, Finished, NotStarted, Start, Started};
use super::store::{CLOSE_RIDE, INSERT_RIDE};
use crate::billing::charge::{self, Charging};
use crate::db::chain::Chain;
use crate::db::{is_unique_violation, Conn};
use crate::error::Error;
use crate::fleet::store::{LOG_CHANGE, UPDATE_STATE};
use crate::fleet::{Event, Reason, ScooterState};

/// The scooter's state change and its log row as parts `changed` and `logged`.
fn change_state<'q>(
    chain: &mut Chain<'q>,
    scooter_id: &'q str,
    from: ScooterState,
    to: ScooterState,
    event: Event,
    at_ms: i64,
) {
    chain.with(
        &format!("changed as ({UPDATE_STATE}), logged as ({LOG_CHANGE} from changed)"),
        |q| {
            q.bind(to.as_str())
                .bind(to.reason().map(Reason::as_str))
                .bind(scooter_id)
                .bind(from.as_str())
                .bind(from.reason().map(Reason::as_str).unwrap_or(""))
                .bind(event.as_str())
                .bind(at_ms)
        },
    );
}

/// The unlock in one statement, when it ends no reservation: the scooter's move to
/// `on_trip` decides, and the ride and its `unlock` command are written only with it. A
/// ride already open for the rider or on the scooter fails the statement at the unique
/// indexes; nothing of it is written then. Either way the loser is told as a lost race.
pub(super) async fn start(pool: &PgPool, start: &Start<'_>) -> Result<Started, NotStarted> {
    let ride = start.ride;
    let mut chain = Chain::default();
    change_state(
        &mut chain,
        ride.scooter_id,
        start.from,
        ScooterState::OnTrip,
        Event::TripStart,
        ride.started_at_ms,
    );
    chain.with(&format!("ride as ({INSERT_RIDE} from changed)"), |q| {
        ride.bind(q)
    });
    chain.with(
        &format!("command as ({QUEUE} having exists (select 1 from changed))"),
        |q| start.command.bind(q),
    );
    let (sql, args) = chain.finish("select state_version from changed")?;
    match sqlx::query_scalar_with(&sql, args)
        .fetch_optional(pool)
        .await
    {
        Ok(Some(version)) => Ok((version, None)),
        // The scooter moved first: to another ride of this rider, perhaps, which the
        // contract's order names first.
        Ok(None) => Err(NotStarted::LostRace),
        Err(err) if is_unique_violation(&err) => Err(NotStarted::LostRace),
        Err(err) => Err(err.into()),
    }
}

/// The end: the wallet's lock and sums, then the charge's rows, the ride closed, the
/// scooter freed and its last command in one statement. When the ride was no longer active
/// (another end got there first), the transaction is dropped and nothing of it happens.
pub(super) async fn finish(pool: &PgPool, finish: &Finish<'_>) -> Result<Finished, Error> {
    let ride = finish.ride;
    let now_ms = finish.charge.at.timestamp_millis();
    let mut tx = pool.begin().await?;
    let charging =
        charge::plan_charge(&mut Conn::from(&mut *tx), finish.tariff, &finish.charge).await?;
    let (charged, plan) = match &charging {
        Charging::Done(charged) => (charged, None),
        Charging::Planned(plan) => (plan.charge(), Some(plan)),
    };
    let bill = finish.bill(charged);
    let end = finish.end(&bill).values();
    // Commands before the last go first, so that the last one is stamped after them.
    let (last, earlier) = finish
        .commands
        .split_last()
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("a ride ends with a command")))?;
    for command in earlier {
        commands::queue_new_on(&mut Conn::from(&mut *tx), command).await?;
    }
    let chain_values = plan.map(charge::Plan::chain_values);
    let mut chain = Chain::default();
    chain.with(&format!("closed as ({CLOSE_RIDE} returning id)"), |q| {
        end.bind(q).bind(ride.id.as_str())
    });
    change_state(
        &mut chain,
        &ride.scooter_id,
        ScooterState::OnTrip,
        ScooterState::Available,
        Event::TripEnd,
        now_ms,
    );
    chain.with(&format!("command as ({QUEUE})"), |q| last.bind(q));
    let posts = match (plan, &chain_values) {
        (Some(plan), Some(values)) => plan.chain(&mut chain, values),
        _ => false,
    };
    let posted = if posts {
        "(select count(*) from ltx)"
    } else {
        "cast(1 as bigint)"
    };
    let (sql, args) = chain.finish(&format!(
        "select (select count(*) from closed), (select state_version from changed), {posted}"
    ))?;
    let (closed, version, posted): (i64, Option<i64>, i64) =
        sqlx::query_as_with(&sql, args).fetch_one(&mut *tx).await?;
    if closed == 0 {
        // Dropped uncommitted: nothing of this transaction happens.
        return Err(ride_not_active());
    }
    if let Some(plan) = plan {
        plan.check_chained(posted > 0)?;
    }
    tx.commit().await?;
    Ok((version, bill))
}
