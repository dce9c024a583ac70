//! Making it right: goodwill credits to a wallet and refunds of a ride's charge.
//!
//! Both run on a [`Conn`] so the caller (a complaint, a support agent's decision) records its
//! own side in the same transaction, and both happen once per reference:
//!
//! ```ignore
//! db_run!(&state.db, |pool| {
//!     let mut tx = pool.begin().await?;
//!     // … record the complaint on `&mut *tx` …
//!     billing::adjust::credit_wallet(Conn::from(&mut *tx), &state.tariff,
//!         &Credit { rider_id, amount, reference: &complaint_id, at: now }).await?;
//!     tx.commit().await?;
//!     Ok::<_, Error>(())
//! })?;
//! ```

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::ledger::{self, Kind, NewTransaction, Posted};
use super::store::{add_pack_minutes, charged_on, wallet_on};
use super::{to_cents, Tariff, Wallet};
use crate::db::Conn;
use crate::error::Error;

/// A goodwill credit: money the service gives a rider, paid from `expense:goodwill`.
#[derive(Clone, Debug)]
pub struct Credit<'a> {
    pub rider_id: &'a str,
    pub amount: Decimal,
    /// What the credit is for (a complaint, a support case): credited once.
    pub reference: &'a str,
    pub at: DateTime<Utc>,
}

/// Credits the rider's wallet; the next ride uses it automatically. Crediting the same
/// reference again changes nothing. Returns the wallet afterwards.
pub async fn credit_wallet(
    mut conn: Conn<'_>,
    tariff: &Tariff,
    credit: &Credit<'_>,
) -> Result<Wallet, Error> {
    let cents = to_cents(credit.amount);
    if cents <= 0 {
        return Err(Error::invalid("A credit must be more than 0.00."));
    }
    let conn = &mut conn;
    ledger::lock_wallet(conn, credit.rider_id, &tariff.currency, credit.at).await?;
    let wallet_code = ledger::wallet_account(credit.rider_id);
    ledger::post(
        conn,
        &NewTransaction {
            kind: Kind::Credit,
            reference: credit.reference,
            rider_id: Some(credit.rider_id),
            currency: &tariff.currency,
            at: credit.at,
            entries: &[(&wallet_code, cents), (ledger::EXPENSE_GOODWILL, -cents)],
        },
    )
    .await?;
    wallet_on(conn, tariff, credit.rider_id).await
}

/// What a ride's refund gave back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refund {
    /// Money returned to the wallet: what the wallet paid for the ride.
    pub wallet_amount: Decimal,
    /// Pack minutes returned.
    pub pack_minutes: i64,
    /// True when the ride had already been refunded (nothing moved this time).
    pub already_refunded: bool,
    pub wallet: Wallet,
}

/// Refunds everything the rider paid for a ride: the wallet part goes back to the wallet
/// (taken from `revenue:rides`) and pack minutes are returned. The free trial is not given
/// back: it was a first ride, and that has happened. A ride is refunded once; `None` when
/// the ride was never charged.
pub async fn refund_ride(
    mut conn: Conn<'_>,
    tariff: &Tariff,
    ride_id: &str,
    at: DateTime<Utc>,
) -> Result<Option<Refund>, Error> {
    let conn = &mut conn;
    let Some(charge) = charged_on(conn, ride_id).await? else {
        return Ok(None);
    };
    let rider_id = charge.rider_id.as_str();
    ledger::lock_wallet(conn, rider_id, &tariff.currency, at).await?;
    let refunded_before = ledger::find(conn, Kind::Refund, ride_id).await?.is_some()
        || minutes_refunded(conn, ride_id).await?;
    let wallet_cents = to_cents(charge.breakdown.wallet_amount);
    let pack_minutes = charge.breakdown.pack_minutes;
    if !refunded_before {
        if wallet_cents > 0 {
            let wallet_code = ledger::wallet_account(rider_id);
            let posted = ledger::post(
                conn,
                &NewTransaction {
                    kind: Kind::Refund,
                    reference: ride_id,
                    rider_id: Some(rider_id),
                    currency: &charge.currency,
                    at,
                    entries: &[
                        (&wallet_code, wallet_cents),
                        (ledger::REVENUE_RIDES, -wallet_cents),
                    ],
                },
            )
            .await?;
            debug_assert!(matches!(posted, Posted::New(_)));
        }
        if pack_minutes > 0 {
            add_pack_minutes(conn, rider_id, pack_minutes, "refund", ride_id, at).await?;
        }
    }
    Ok(Some(Refund {
        wallet_amount: charge.breakdown.wallet_amount,
        pack_minutes,
        already_refunded: refunded_before,
        wallet: wallet_on(conn, tariff, rider_id).await?,
    }))
}

async fn minutes_refunded(conn: &mut Conn<'_>, ride_id: &str) -> Result<bool, Error> {
    let found: Option<i64> = crate::conn_run!(conn, |c| sqlx::query_scalar(
        "select minutes from pack_minute_movements where kind = 'refund' and reference = $1"
    )
    .bind(ride_id)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(found.is_some())
}
