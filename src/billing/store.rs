//! Wallets, packs, the free trial and ride charges in the database, on top of the ledger.
//!
//! Every function that moves money first locks the rider's wallet account
//! ([`ledger::lock_wallet`]), then reads balances, then posts: two movements on one wallet
//! never interleave, on SQLite or PostgreSQL.

use std::sync::LazyLock;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::ledger::{self, Kind, NewTransaction};
use super::pricing::Breakdown;
use super::{from_cents, to_cents, Pack, Tariff, Wallet};
use crate::conn_run;
use crate::db::{raw, Conn, Db};
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
pub(super) struct Sums {
    pub(super) balance_cents: i64,
    pub(super) pack_minutes: i64,
    pub(super) trial_uses: i64,
    pub(super) ride_charged: bool,
}

impl Sums {
    fn from_row((balance_cents, pack_minutes, trial_uses, charges): (i64, i64, i64, i64)) -> Self {
        Sums {
            balance_cents,
            pack_minutes,
            trial_uses,
            ride_charged: charges > 0,
        }
    }
}

/// The sums behind a wallet: `$1` the wallet account, `$2` the rider; and whether `$3` (a
/// ride) has a charge.
pub(super) const SUMS: &str = "select \
       (select cast(coalesce(sum(amount_cents), 0) as bigint) from ledger_entries \
         where account_code = $1), \
       (select cast(coalesce(sum(minutes), 0) as bigint) from pack_minute_movements \
         where rider_id = $2), \
       (select count(*) from free_trial_uses where rider_id = $2), \
       (select count(*) from ride_charges where ride_id = $3)";

/// The sums behind a wallet, and whether `ride_id` has a charge, in one query.
pub(super) async fn sums_on(
    conn: &mut Conn<'_>,
    rider_id: &str,
    ride_id: &str,
) -> Result<Sums, Error> {
    let row = conn_run!(conn, |c| {
        sqlx::query_as(SUMS)
            .bind(ledger::wallet_account(rider_id))
            .bind(rider_id)
            .bind(ride_id)
            .fetch_one(&mut *c)
            .await
    })?;
    Ok(Sums::from_row(row))
}

/// [`sums_on`] on a SQLite handle.
pub(super) fn sums_raw(
    c: &rusqlite::Connection,
    rider_id: &str,
    ride_id: &str,
) -> rusqlite::Result<Sums> {
    let wallet = ledger::wallet_account(rider_id);
    let row = raw::query_row(c, SUMS, &[&wallet, &rider_id, &ride_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    row.map(Sums::from_row)
        .ok_or(rusqlite::Error::QueryReturnedNoRows)
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

/// A movement of pack minutes: `$1` rider, `$2` minutes, `$3` kind, `$4` reference, `$5` time.
pub(super) const ADD_PACK_MINUTES: &str = "insert into pack_minute_movements \
     (rider_id, minutes, kind, reference, created_at_ms) values ($1, $2, $3, $4, $5)";

pub(super) async fn add_pack_minutes(
    conn: &mut Conn<'_>,
    rider_id: &str,
    minutes: i64,
    kind: &str,
    reference: &str,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    conn_run!(conn, |c| sqlx::query(ADD_PACK_MINUTES)
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
pub(super) struct ChargeRow {
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
    /// A charge as [`charged_raw`] reads it: [`CHARGE_COLUMNS`] in order.
    fn from_raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(ChargeRow {
            ride_id: r.get(0)?,
            rider_id: r.get(1)?,
            duration_s: r.get(2)?,
            billed_minutes: r.get(3)?,
            rate: r.get(4)?,
            currency: r.get(5)?,
            amount_cents: r.get(6)?,
            vat_cents: r.get(7)?,
            free_trial_minutes: r.get(8)?,
            pack_minutes: r.get(9)?,
            wallet_cents: r.get(10)?,
            balance_after_cents: r.get(11)?,
            charged_at_ms: r.get(12)?,
        })
    }

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

/// A ride's charge: [`CHARGE_COLUMNS`] in order, `$1`–`$13`.
pub(super) static INSERT_CHARGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "insert into ride_charges ({CHARGE_COLUMNS}) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    )
});

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

/// [`charged_on`] on a SQLite handle.
pub(super) fn charged_raw(
    c: &rusqlite::Connection,
    ride_id: &str,
) -> Result<Option<ChargedRide>, Error> {
    let sql = format!("select {CHARGE_COLUMNS} from ride_charges where ride_id = $1");
    raw::query_row(c, &sql, &[&ride_id], ChargeRow::from_raw)
        .map_err(raw::into_sqlx)?
        .map(ChargeRow::into_charge)
        .transpose()
}

/// How a ride was paid for, if it has been charged.
pub async fn charged_ride(db: &Db, ride_id: &str) -> Result<Option<ChargedRide>, Error> {
    db_run!(db, |pool| {
        let mut conn = pool.acquire().await?;
        charged_on(&mut Conn::from(&mut *conn), ride_id).await
    })
}
