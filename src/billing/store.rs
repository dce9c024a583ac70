//! Wallets, packs, the free trial and ride charges in the database, on top of the ledger.
//!
//! Every function that moves money first locks the rider's wallet account
//! ([`ledger::lock_wallet`]), then reads balances, then posts: two movements on one wallet
//! never interleave, on SQLite or PostgreSQL.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::ledger::{self, Kind, NewTransaction, Posted};
use super::pricing::{self, Breakdown};
use super::{from_cents, to_cents, Pack, RideCharge, Tariff, Wallet};
use crate::conn_run;
use crate::db::{Conn, Db};
use crate::db_run;
use crate::db_write;
use crate::error::Error;

/// The rider's wallet, read on `conn` (e.g. inside the caller's transaction) in one query:
/// the wallet account's entries, the pack-minute movements and the trial's use.
pub async fn wallet_on(
    conn: &mut Conn<'_>,
    tariff: &Tariff,
    rider_id: &str,
) -> Result<Wallet, Error> {
    let sums = sums_on(conn, rider_id, "").await?;
    Ok(Wallet::from_sums(
        tariff.free_trial_minutes,
        sums.balance_cents,
        sums.pack_minutes,
        sums.trial_uses,
    ))
}

/// What a wallet is made of, and whether a ride has been charged already.
struct Sums {
    balance_cents: i64,
    pack_minutes: i64,
    trial_uses: i64,
    ride_charged: bool,
}

/// The sums behind a wallet, and whether `ride_id` has a charge, in one query.
async fn sums_on(conn: &mut Conn<'_>, rider_id: &str, ride_id: &str) -> Result<Sums, Error> {
    let (balance_cents, pack_minutes, trial_uses, charges): (i64, i64, i64, i64) =
        conn_run!(conn, |c| {
            sqlx::query_as(
                "select \
                   (select cast(coalesce(sum(amount_cents), 0) as bigint) from ledger_entries \
                     where account_code = $1), \
                   (select cast(coalesce(sum(minutes), 0) as bigint) from pack_minute_movements \
                     where rider_id = $2), \
                   (select count(*) from free_trial_uses where rider_id = $2), \
                   (select count(*) from ride_charges where ride_id = $3)",
            )
            .bind(ledger::wallet_account(rider_id))
            .bind(rider_id)
            .bind(ride_id)
            .fetch_one(&mut *c)
            .await
        })?;
    Ok(Sums {
        balance_cents,
        pack_minutes,
        trial_uses,
        ride_charged: charges > 0,
    })
}

/// The rider's wallet: balance, pack minutes and free trial.
pub async fn wallet(db: &Db, tariff: &Tariff, rider_id: &str) -> Result<Wallet, Error> {
    db_run!(db, |pool| {
        let mut conn = pool.acquire().await?;
        wallet_on(&mut Conn::from(&mut *conn), tariff, rider_id).await
    })
}

/// Credits a payment the provider accepted to the rider's wallet. `payment_id` is posted
/// once: recording the same payment again changes nothing.
pub async fn record_top_up(
    db: &Db,
    tariff: &Tariff,
    rider_id: &str,
    amount: Decimal,
    payment_id: &str,
    at: DateTime<Utc>,
) -> Result<Wallet, Error> {
    let wallet_code = ledger::wallet_account(rider_id);
    let cents = to_cents(amount);
    db_write!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut conn = Conn::from(&mut *tx);
        ledger::lock_wallet(&mut conn, rider_id, &tariff.currency, at).await?;
        ledger::post(
            &mut conn,
            &NewTransaction {
                kind: Kind::TopUp,
                reference: payment_id,
                rider_id: Some(rider_id),
                currency: &tariff.currency,
                at,
                entries: &[(&wallet_code, cents), (ledger::EXTERNAL_PAYMENTS, -cents)],
            },
        )
        .await?;
        let wallet = wallet_on(&mut conn, tariff, rider_id).await?;
        tx.commit().await?;
        Ok(wallet)
    })
}

/// Buys `pack` from the rider's wallet: 402 `insufficient_funds` when the balance does not
/// cover its price. `reference` names the purchase; buying under the same reference again
/// changes nothing.
pub async fn buy_pack(
    db: &Db,
    tariff: &Tariff,
    rider_id: &str,
    pack: &Pack,
    reference: &str,
    at: DateTime<Utc>,
) -> Result<Wallet, Error> {
    let wallet_code = ledger::wallet_account(rider_id);
    let price = to_cents(pack.price);
    db_write!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut conn = Conn::from(&mut *tx);
        ledger::lock_wallet(&mut conn, rider_id, &tariff.currency, at).await?;
        if ledger::find(&mut conn, Kind::PackPurchase, reference)
            .await?
            .is_none()
        {
            let balance = ledger::balance_cents(&mut conn, &wallet_code).await?;
            if balance < price {
                return Err(Error::problem(
                    StatusCode::PAYMENT_REQUIRED,
                    "insufficient_funds",
                    format!(
                        "This pack costs {} {} and your wallet holds {} {}. Please top it up first.",
                        super::money(pack.price),
                        tariff.currency,
                        super::money(from_cents(balance)),
                        tariff.currency
                    ),
                ));
            }
            ledger::post(
                &mut conn,
                &NewTransaction {
                    kind: Kind::PackPurchase,
                    reference,
                    rider_id: Some(rider_id),
                    currency: &tariff.currency,
                    at,
                    entries: &[(&wallet_code, -price), (ledger::REVENUE_PACKS, price)],
                },
            )
            .await?;
            add_pack_minutes(
                &mut conn,
                rider_id,
                pack.minutes,
                "pack_purchase",
                reference,
                at,
            )
            .await?;
        }
        let wallet = wallet_on(&mut conn, tariff, rider_id).await?;
        tx.commit().await?;
        Ok(wallet)
    })
}

pub(super) async fn add_pack_minutes(
    conn: &mut Conn<'_>,
    rider_id: &str,
    minutes: i64,
    kind: &str,
    reference: &str,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    conn_run!(conn, |c| sqlx::query(
        "insert into pack_minute_movements (rider_id, minutes, kind, reference, created_at_ms) \
         values ($1, $2, $3, $4, $5)"
    )
    .bind(rider_id)
    .bind(minutes)
    .bind(kind)
    .bind(reference)
    .bind(at.timestamp_millis())
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// How a ride was paid for, as recorded when it was charged: what a receipt shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargedRide {
    pub ride_id: String,
    pub rider_id: String,
    pub duration_s: i64,
    pub rate: Decimal,
    pub currency: String,
    /// The VAT included in `breakdown.amount`.
    pub vat: Decimal,
    pub breakdown: Breakdown,
    pub charged_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ChargeRow {
    ride_id: String,
    rider_id: String,
    duration_s: i64,
    billed_minutes: i64,
    rate: String,
    currency: String,
    amount_cents: i64,
    vat_cents: i64,
    free_trial_minutes: i64,
    pack_minutes: i64,
    wallet_cents: i64,
    balance_after_cents: i64,
    charged_at_ms: i64,
}

impl ChargeRow {
    fn into_charge(self) -> Result<ChargedRide, Error> {
        let rate = self.rate.parse::<Decimal>().map_err(|e| {
            Error::Internal(anyhow::anyhow!(
                "ride {} has rate {:?}: {e}",
                self.ride_id,
                self.rate
            ))
        })?;
        Ok(ChargedRide {
            ride_id: self.ride_id,
            rider_id: self.rider_id,
            duration_s: self.duration_s,
            rate,
            currency: self.currency,
            vat: from_cents(self.vat_cents),
            breakdown: Breakdown {
                billed_minutes: self.billed_minutes,
                amount: from_cents(self.amount_cents),
                free_trial_minutes: self.free_trial_minutes,
                pack_minutes: self.pack_minutes,
                wallet_amount: from_cents(self.wallet_cents),
                balance_after: from_cents(self.balance_after_cents),
            },
            charged_at: crate::clock::from_millis(self.charged_at_ms),
        })
    }
}

const CHARGE_COLUMNS: &str = "ride_id, rider_id, duration_s, billed_minutes, rate, currency, \
    amount_cents, vat_cents, free_trial_minutes, pack_minutes, wallet_cents, \
    balance_after_cents, charged_at_ms";

pub(super) async fn charged_on(
    conn: &mut Conn<'_>,
    ride_id: &str,
) -> Result<Option<ChargedRide>, Error> {
    let sql = format!("select {CHARGE_COLUMNS} from ride_charges where ride_id = $1");
    let row: Option<ChargeRow> = conn_run!(conn, |c| sqlx::query_as(&sql)
        .bind(ride_id)
        .fetch_optional(&mut *c)
        .await)?;
    row.map(ChargeRow::into_charge).transpose()
}

/// How a ride was paid for, if it has been charged.
pub async fn charged_ride(db: &Db, ride_id: &str) -> Result<Option<ChargedRide>, Error> {
    db_run!(db, |pool| {
        let mut conn = pool.acquire().await?;
        charged_on(&mut Conn::from(&mut *conn), ride_id).await
    })
}

/// Charges an ended ride on `conn`, inside the caller's transaction, so the ride's end and
/// its payment commit (or roll back) together. The free trial goes first (and is used up by
/// the rider's first charged ride), then pack minutes, then the wallet, which may go into
/// debt. A ride is charged once: charging it again returns the first charge unchanged.
pub async fn charge_ride(
    mut conn: Conn<'_>,
    tariff: &Tariff,
    ride: &RideCharge<'_>,
) -> Result<ChargedRide, Error> {
    let conn = &mut conn;
    ledger::lock_wallet(conn, ride.rider_id, &tariff.currency, ride.at).await?;
    let sums = sums_on(conn, ride.rider_id, ride.ride_id).await?;
    if sums.ride_charged {
        if let Some(done) = charged_on(conn, ride.ride_id).await? {
            return Ok(done);
        }
    }
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
    let at_ms = ride.at.timestamp_millis();
    if wallet.free_trial_available() {
        conn_run!(conn, |c| sqlx::query(
            "insert into free_trial_uses (rider_id, ride_id, minutes, used_at_ms) \
             values ($1, $2, $3, $4)"
        )
        .bind(ride.rider_id)
        .bind(ride.ride_id)
        .bind(breakdown.free_trial_minutes)
        .bind(at_ms)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    }
    if breakdown.pack_minutes > 0 {
        add_pack_minutes(
            conn,
            ride.rider_id,
            -breakdown.pack_minutes,
            "ride",
            ride.ride_id,
            ride.at,
        )
        .await?;
    }
    let wallet_cents = to_cents(breakdown.wallet_amount);
    if wallet_cents > 0 {
        let wallet_code = ledger::wallet_account(ride.rider_id);
        let posted = ledger::post(
            conn,
            &NewTransaction {
                kind: Kind::RideCharge,
                reference: ride.ride_id,
                rider_id: Some(ride.rider_id),
                currency: &tariff.currency,
                at: ride.at,
                entries: &[
                    (&wallet_code, -wallet_cents),
                    (ledger::REVENUE_RIDES, wallet_cents),
                ],
            },
        )
        .await?;
        if let Posted::Already(id) = posted {
            return Err(Error::Internal(anyhow::anyhow!(
                "ride {} has ledger charge {id} but no ride_charges row",
                ride.ride_id
            )));
        }
    }
    let charge = ChargedRide {
        ride_id: ride.ride_id.to_owned(),
        rider_id: ride.rider_id.to_owned(),
        duration_s,
        rate: ride.rate_per_minute,
        currency: tariff.currency.clone(),
        vat: pricing::vat_included(breakdown.amount, ride.vat_rate),
        breakdown,
        charged_at: ride.at,
    };
    let sql = format!(
        "insert into ride_charges ({CHARGE_COLUMNS}) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    );
    conn_run!(conn, |c| sqlx::query(&sql)
        .bind(&charge.ride_id)
        .bind(&charge.rider_id)
        .bind(charge.duration_s)
        .bind(breakdown.billed_minutes)
        .bind(charge.rate.to_string())
        .bind(&charge.currency)
        .bind(to_cents(breakdown.amount))
        .bind(to_cents(charge.vat))
        .bind(breakdown.free_trial_minutes)
        .bind(breakdown.pack_minutes)
        .bind(wallet_cents)
        .bind(to_cents(breakdown.balance_after))
        .bind(at_ms)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(charge)
}
