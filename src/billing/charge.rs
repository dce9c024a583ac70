//! Charging an ended ride, inside the transaction that ends it: the free trial first (used
//! up by the rider's first charged ride), then pack minutes, then the wallet, which may go
//! into debt. A ride is charged once: charging it again returns the first charge unchanged.
//!
//! What to write is decided once ([`plan`]) from the wallet's sums, read under the wallet's
//! lock; the writes run through sqlx on either engine ([`charge_ride`]), inside a SQLite
//! transaction run on the writer's handle on that handle ([`charge_ride_raw`]), or on
//! PostgreSQL as parts of the caller's chained statement ([`plan_charge`], [`Plan::chain`]).

use super::ledger::{self, Kind, NewTransaction, Posted};
use super::pricing;
use super::store::{self, ChargedRide, Sums, ADD_PACK_MINUTES, INSERT_CHARGE};
use super::{to_cents, RideCharge, Tariff, Wallet};
use crate::conn_run;
use crate::db::chain::Chain;
use crate::db::{raw, Conn};
use crate::error::Error;

/// The use of the free trial: `$1` rider, `$2` ride, `$3` minutes, `$4` time.
const INSERT_TRIAL_USE: &str = "insert into free_trial_uses (rider_id, ride_id, minutes, \
     used_at_ms) values ($1, $2, $3, $4)";

/// The rows a charge writes.
pub struct Plan {
    charge: ChargedRide,
    /// This ride uses the rider's free trial.
    trial_use: bool,
    /// What the wallet pays, posted to the ledger when above zero.
    wallet_cents: i64,
    wallet_code: String,
    at_ms: i64,
}

/// Splits the ride between trial, packs and wallet as the sums stand.
fn plan(tariff: &Tariff, ride: &RideCharge<'_>, sums: &Sums) -> Plan {
    // The trial is the one offered when the ride started, if still unused.
    let wallet = Wallet::from_sums(
        ride.free_trial_minutes,
        sums.balance_cents,
        sums.pack_minutes,
        sums.trial_uses,
    );
    let duration_s = ride.duration_s.max(0);
    let breakdown = pricing::split(
        pricing::billed_minutes(duration_s),
        ride.rate_per_minute,
        wallet.free_trial_minutes,
        wallet.pack_minutes,
        wallet.balance,
    );
    Plan {
        trial_use: wallet.free_trial_available(),
        wallet_cents: to_cents(breakdown.wallet_amount),
        wallet_code: ledger::wallet_account(ride.rider_id),
        at_ms: ride.at.timestamp_millis(),
        charge: ChargedRide {
            ride_id: ride.ride_id.to_owned(),
            rider_id: ride.rider_id.to_owned(),
            duration_s,
            rate: ride.rate_per_minute,
            currency: tariff.currency.clone(),
            vat: pricing::vat_included(breakdown.amount, ride.vat_rate),
            breakdown,
            charged_at: ride.at,
        },
    }
}

impl Plan {
    /// The wallet's part as a ledger transaction, on `entries` (see [`Plan::entries`]).
    fn posting<'a>(&'a self, entries: &'a [(&'a str, i64)]) -> NewTransaction<'a> {
        NewTransaction {
            kind: Kind::RideCharge,
            reference: &self.charge.ride_id,
            rider_id: Some(&self.charge.rider_id),
            currency: &self.charge.currency,
            at: self.charge.charged_at,
            entries,
        }
    }

    fn entries(&self) -> [(&str, i64); 2] {
        [
            (&self.wallet_code, -self.wallet_cents),
            (ledger::REVENUE_RIDES, self.wallet_cents),
        ]
    }

    /// A ledger charge without its `ride_charges` row is a bug: refuse to go on.
    fn check_posted(&self, posted: Posted) -> Result<(), Error> {
        match posted {
            Posted::New(_) => Ok(()),
            Posted::Already(id) => Err(Error::Internal(anyhow::anyhow!(
                "ride {} has ledger charge {id} but no ride_charges row",
                self.charge.ride_id
            ))),
        }
    }
}

/// The values of [`INSERT_CHARGE`], in order.
struct ChargeValues {
    rate: String,
    amount_cents: i64,
    vat_cents: i64,
    balance_after_cents: i64,
}

impl ChargeValues {
    fn of(charge: &ChargedRide) -> Self {
        ChargeValues {
            rate: charge.rate.to_string(),
            amount_cents: to_cents(charge.breakdown.amount),
            vat_cents: to_cents(charge.vat),
            balance_after_cents: to_cents(charge.breakdown.balance_after),
        }
    }
}

/// Charges an ended ride on `conn`, inside the caller's transaction, so the ride's end and
/// its payment commit (or roll back) together.
pub async fn charge_ride(
    mut conn: Conn<'_>,
    tariff: &Tariff,
    ride: &RideCharge<'_>,
) -> Result<ChargedRide, Error> {
    let conn = &mut conn;
    ledger::lock_wallet(conn, ride.rider_id, &tariff.currency, ride.at).await?;
    let sums = store::sums_on(conn, ride.rider_id, ride.ride_id).await?;
    if sums.ride_charged {
        if let Some(done) = store::charged_on(conn, ride.ride_id).await? {
            return Ok(done);
        }
    }
    let plan = plan(tariff, ride, &sums);
    let breakdown = &plan.charge.breakdown;
    if plan.trial_use {
        conn_run!(conn, |c| sqlx::query(INSERT_TRIAL_USE)
            .bind(ride.rider_id)
            .bind(ride.ride_id)
            .bind(breakdown.free_trial_minutes)
            .bind(plan.at_ms)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    if breakdown.pack_minutes > 0 {
        store::add_pack_minutes(
            conn,
            ride.rider_id,
            -breakdown.pack_minutes,
            "ride",
            ride.ride_id,
            ride.at,
        )
        .await?;
    }
    if plan.wallet_cents > 0 {
        let entries = plan.entries();
        let posted = ledger::post(conn, &plan.posting(&entries)).await?;
        plan.check_posted(posted)?;
    }
    let values = ChargeValues::of(&plan.charge);
    let charge = &plan.charge;
    conn_run!(conn, |c| sqlx::query(&INSERT_CHARGE)
        .bind(&charge.ride_id)
        .bind(&charge.rider_id)
        .bind(charge.duration_s)
        .bind(breakdown.billed_minutes)
        .bind(&values.rate)
        .bind(&charge.currency)
        .bind(values.amount_cents)
        .bind(values.vat_cents)
        .bind(breakdown.free_trial_minutes)
        .bind(breakdown.pack_minutes)
        .bind(plan.wallet_cents)
        .bind(values.balance_after_cents)
        .bind(plan.at_ms)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(plan.charge)
}

/// [`charge_ride`] on a SQLite handle, inside a transaction run by
/// [`crate::db::raw::transaction`].
pub fn charge_ride_raw(
    c: &rusqlite::Connection,
    tariff: &Tariff,
    ride: &RideCharge<'_>,
) -> Result<ChargedRide, Error> {
    ledger::lock_wallet_raw(c, ride.rider_id, &tariff.currency, ride.at).map_err(raw::into_sqlx)?;
    let sums = store::sums_raw(c, ride.rider_id, ride.ride_id).map_err(raw::into_sqlx)?;
    if sums.ride_charged {
        if let Some(done) = store::charged_raw(c, ride.ride_id)? {
            return Ok(done);
        }
    }
    let plan = plan(tariff, ride, &sums);
    let breakdown = &plan.charge.breakdown;
    let run = |sql: &str, args: &[&dyn rusqlite::ToSql]| {
        raw::execute(c, sql, args).map_err(raw::into_sqlx)
    };
    if plan.trial_use {
        run(
            INSERT_TRIAL_USE,
            &[
                &ride.rider_id,
                &ride.ride_id,
                &breakdown.free_trial_minutes,
                &plan.at_ms,
            ],
        )?;
    }
    if breakdown.pack_minutes > 0 {
        run(
            ADD_PACK_MINUTES,
            &[
                &ride.rider_id,
                &-breakdown.pack_minutes,
                &"ride",
                &ride.ride_id,
                &plan.at_ms,
            ],
        )?;
    }
    if plan.wallet_cents > 0 {
        let entries = plan.entries();
        let posted = ledger::post_raw(c, &plan.posting(&entries))?;
        plan.check_posted(posted)?;
    }
    let values = ChargeValues::of(&plan.charge);
    let charge = &plan.charge;
    run(
        &INSERT_CHARGE,
        &[
            &charge.ride_id,
            &charge.rider_id,
            &charge.duration_s,
            &breakdown.billed_minutes,
            &values.rate,
            &charge.currency,
            &values.amount_cents,
            &values.vat_cents,
            &breakdown.free_trial_minutes,
            &breakdown.pack_minutes,
            &plan.wallet_cents,
            &values.balance_after_cents,
            &plan.at_ms,
        ],
    )?;
    Ok(plan.charge)
}

/// A charge planned on PostgreSQL: charged before, or its writes still to chain.
pub enum Charging {
    Done(ChargedRide),
    Planned(Plan),
}

/// Locks the rider's wallet and reads its sums — two statements, so that the sums are read
/// after the lock is held — and plans the charge, for [`Plan::chain`] to write.
pub async fn plan_charge(
    conn: &mut Conn<'_>,
    tariff: &Tariff,
    ride: &RideCharge<'_>,
) -> Result<Charging, Error> {
    ledger::lock_wallet(conn, ride.rider_id, &tariff.currency, ride.at).await?;
    let sums = store::sums_on(conn, ride.rider_id, ride.ride_id).await?;
    if sums.ride_charged {
        if let Some(done) = store::charged_on(conn, ride.ride_id).await? {
            return Ok(Charging::Done(done));
        }
    }
    Ok(Charging::Planned(plan(tariff, ride, &sums)))
}

impl Plan {
    pub fn charge(&self) -> &ChargedRide {
        &self.charge
    }

    /// Adds the charge's rows to `chain`. When it posts to the ledger, the part `ltx`
    /// returns the ledger transaction if it is new: check with [`Plan::check_chained`].
    /// True when it posts.
    pub fn chain<'q>(&'q self, chain: &mut Chain<'q>, values: &'q ChainValues) -> bool {
        let charge = &self.charge;
        let breakdown = &charge.breakdown;
        if self.trial_use {
            chain.with(&format!("trial as ({INSERT_TRIAL_USE})"), |q| {
                q.bind(charge.rider_id.as_str())
                    .bind(charge.ride_id.as_str())
                    .bind(breakdown.free_trial_minutes)
                    .bind(self.at_ms)
            });
        }
        if breakdown.pack_minutes > 0 {
            chain.with(&format!("packs as ({ADD_PACK_MINUTES})"), |q| {
                q.bind(charge.rider_id.as_str())
                    .bind(-breakdown.pack_minutes)
                    .bind("ride")
                    .bind(charge.ride_id.as_str())
                    .bind(self.at_ms)
            });
        }
        let posts = self.wallet_cents > 0;
        if posts {
            chain.with(&format!("ltx as ({})", ledger::INSERT_TRANSACTION), |q| {
                q.bind(values.ledger_id.as_str())
                    .bind(Kind::RideCharge.as_str())
                    .bind(charge.ride_id.as_str())
                    .bind(charge.rider_id.as_str())
                    .bind(self.at_ms)
            });
            for (i, (code, cents)) in self.entries().into_iter().enumerate() {
                chain.with(
                    &format!("entry{i} as ({} from ltx)", ledger::INSERT_ENTRY),
                    |q| q.bind(values.ledger_id.as_str()).bind(code).bind(cents),
                );
            }
        }
        chain.with(&format!("charge as ({})", *INSERT_CHARGE), |q| {
            q.bind(charge.ride_id.as_str())
                .bind(charge.rider_id.as_str())
                .bind(charge.duration_s)
                .bind(breakdown.billed_minutes)
                .bind(values.charge.rate.as_str())
                .bind(charge.currency.as_str())
                .bind(values.charge.amount_cents)
                .bind(values.charge.vat_cents)
                .bind(breakdown.free_trial_minutes)
                .bind(breakdown.pack_minutes)
                .bind(self.wallet_cents)
                .bind(values.charge.balance_after_cents)
                .bind(self.at_ms)
        });
        posts
    }

    /// The values [`Plan::chain`] binds beside the plan's own.
    pub fn chain_values(&self) -> ChainValues {
        ChainValues {
            ledger_id: crate::ids::new_id("ltx"),
            charge: ChargeValues::of(&self.charge),
        }
    }

    /// Whether the chained posting was new (`ltx` returned a row); an error otherwise.
    pub fn check_chained(&self, new: bool) -> Result<(), Error> {
        self.check_posted(if new {
            Posted::New(String::new())
        } else {
            Posted::Already(format!("for {}", self.charge.ride_id))
        })
    }
}

/// Values a chained charge binds that outlive the call: the ledger transaction's id, and
/// the charge row's computed columns.
pub struct ChainValues {
    ledger_id: String,
    charge: ChargeValues,
}
