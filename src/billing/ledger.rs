//! The double-entry ledger: every movement of money is a transaction whose entries, in
//! integer cents, sum to zero. Balances are sums of entries — nothing else holds money.
//!
//! Sign convention: an account's balance is the sum of its entries. A top-up adds to the
//! rider's wallet and takes from `external:payments`; a pack purchase or a ride charge takes
//! from the wallet and adds to `revenue:packs` / `revenue:rides`; a goodwill credit takes
//! from `expense:goodwill`; a refund takes back from revenue.

use chrono::{DateTime, Utc};

use crate::conn_run;
use crate::db::{raw, Conn, Db};
use crate::error::Error;
use crate::{db_run, db_write};

/// Money that came in from the payment provider.
pub const EXTERNAL_PAYMENTS: &str = "external:payments";
/// What rides earned.
pub const REVENUE_RIDES: &str = "revenue:rides";
/// What pack sales earned.
pub const REVENUE_PACKS: &str = "revenue:packs";
/// Credits granted to riders as goodwill.
pub const EXPENSE_GOODWILL: &str = "expense:goodwill";

/// The operator's own accounts, opened at start-up ([`open_operator_accounts`]).
pub const OPERATOR_ACCOUNTS: [&str; 4] = [
    EXTERNAL_PAYMENTS,
    REVENUE_RIDES,
    REVENUE_PACKS,
    EXPENSE_GOODWILL,
];

/// Opens the operator's accounts in `currency` if they are not open yet, so that a posting
/// to them need not check first. Run at start-up, before any posting.
pub async fn open_operator_accounts(
    db: &Db,
    currency: &str,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    db_write!(db, |pool| {
        let mut accounts = sqlx::QueryBuilder::new(
            "insert into ledger_accounts (code, owner_id, currency, version, created_at_ms) ",
        );
        accounts.push_values(OPERATOR_ACCOUNTS, |mut row, code| {
            row.push_bind(code)
                .push("null")
                .push_bind(currency)
                .push("0")
                .push_bind(at.timestamp_millis());
        });
        accounts.push(" on conflict (code) do nothing");
        accounts.build().execute(pool).await.map(|_| ())
    })?;
    Ok(())
}

/// The ledger account of a rider's wallet.
pub fn wallet_account(rider_id: &str) -> String {
    format!("rider:{rider_id}:wallet")
}

/// What a ledger transaction records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    TopUp,
    PackPurchase,
    RideCharge,
    Refund,
    Credit,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TopUp => "top_up",
            Kind::PackPurchase => "pack_purchase",
            Kind::RideCharge => "ride_charge",
            Kind::Refund => "refund",
            Kind::Credit => "credit",
        }
    }
}

/// A balanced movement to post.
#[derive(Debug)]
pub struct NewTransaction<'a> {
    pub kind: Kind,
    /// What it is for (a payment, a ride, a purchase): posted at most once per kind.
    pub reference: &'a str,
    pub rider_id: Option<&'a str>,
    pub currency: &'a str,
    pub at: DateTime<Utc>,
    /// `(account code, cents)`; at least two, none zero, summing to zero.
    pub entries: &'a [(&'a str, i64)],
}

/// The result of posting: the new transaction, or the one already posted for that reference.
#[derive(Debug, PartialEq, Eq)]
pub enum Posted {
    New(String),
    Already(String),
}

/// Refuses transactions that would unbalance the ledger: a bug, never a rider's fault.
fn check_balanced(tx: &NewTransaction<'_>) -> Result<(), Error> {
    let sum: i128 = tx.entries.iter().map(|(_, cents)| i128::from(*cents)).sum();
    if tx.entries.len() < 2 || sum != 0 || tx.entries.iter().any(|(_, cents)| *cents == 0) {
        return Err(Error::Internal(anyhow::anyhow!(
            "unbalanced ledger transaction {} {}: {:?}",
            tx.kind.as_str(),
            tx.reference,
            tx.entries
        )));
    }
    Ok(())
}

/// Creates the rider's wallet account if needed and takes its lock until the surrounding
/// transaction ends, so postings on one wallet happen one after the other on both engines.
/// Call it first in a transaction that reads a balance and then posts.
pub async fn lock_wallet(
    conn: &mut Conn<'_>,
    rider_id: &str,
    currency: &str,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let code = wallet_account(rider_id);
    conn_run!(conn, |c| sqlx::query(LOCK_WALLET)
        .bind(&code)
        .bind(rider_id)
        .bind(currency)
        .bind(at.timestamp_millis())
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// [`lock_wallet`] on a SQLite handle.
pub fn lock_wallet_raw(
    c: &rusqlite::Connection,
    rider_id: &str,
    currency: &str,
    at: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let code = wallet_account(rider_id);
    let args: [&dyn rusqlite::ToSql; 4] = [&code, &rider_id, &currency, &at.timestamp_millis()];
    raw::execute(c, LOCK_WALLET, &args).map(|_| ())
}

/// Opens or touches a wallet account: `$1` code, `$2` rider, `$3` currency, `$4` time.
pub(crate) const LOCK_WALLET: &str = "insert into ledger_accounts \
     (code, owner_id, currency, version, created_at_ms) values ($1, $2, $3, 0, $4) \
     on conflict (code) do update set version = ledger_accounts.version + 1";

/// The balance of one account, in cents.
pub async fn balance_cents(conn: &mut Conn<'_>, code: &str) -> Result<i64, Error> {
    Ok(conn_run!(conn, |c| sqlx::query_scalar(
        "select cast(coalesce(sum(amount_cents), 0) as bigint) from ledger_entries \
         where account_code = $1"
    )
    .bind(code)
    .fetch_one(&mut *c)
    .await)?)
}

/// The transaction already posted for `(kind, reference)`, if any.
pub async fn find(
    conn: &mut Conn<'_>,
    kind: Kind,
    reference: &str,
) -> Result<Option<String>, Error> {
    Ok(conn_run!(conn, |c| sqlx::query_scalar(FIND)
        .bind(kind.as_str())
        .bind(reference)
        .fetch_optional(&mut *c)
        .await)?)
}

/// A transaction by kind (`$1`) and reference (`$2`).
const FIND: &str = "select id from ledger_transactions where kind = $1 and reference = $2";

/// Posts a balanced transaction on `conn`, unless one of the same kind and reference exists.
///
/// Run it after [`lock_wallet`] of the rider concerned, so two postings for one reference
/// cannot race.
pub async fn post(conn: &mut Conn<'_>, tx: &NewTransaction<'_>) -> Result<Posted, Error> {
    check_balanced(tx)?;
    let id = crate::ids::new_id("ltx");
    let at = tx.at.timestamp_millis();
    // The rider's wallet was opened by `lock_wallet` and the operator's accounts at
    // start-up: only other accounts need opening here.
    let wallet = tx.rider_id.map(wallet_account);
    let to_open: Vec<&str> = tx
        .entries
        .iter()
        .map(|(code, _)| *code)
        .filter(|code| !OPERATOR_ACCOUNTS.contains(code) && wallet.as_deref() != Some(*code))
        .collect();
    // Two statements whatever the number of entries (three when an account must be opened):
    // the transaction (or nothing, when its kind and reference were posted before), its
    // entries.
    let inserted: Option<String> = conn_run!(conn, |c| {
        sqlx::query_scalar(INSERT_TRANSACTION)
            .bind(&id)
            .bind(tx.kind.as_str())
            .bind(tx.reference)
            .bind(tx.rider_id)
            .bind(at)
            .fetch_optional(&mut *c)
            .await
    })?;
    if inserted.is_none() {
        let existing = find(conn, tx.kind, tx.reference).await?;
        return existing.map(Posted::Already).ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "ledger transaction {} {} neither inserted nor found",
                tx.kind.as_str(),
                tx.reference
            ))
        });
    }
    conn_run!(conn, |c| {
        if !to_open.is_empty() {
            let mut accounts = sqlx::QueryBuilder::new(
                "insert into ledger_accounts (code, owner_id, currency, version, created_at_ms) ",
            );
            accounts.push_values(&to_open, |mut row, code| {
                row.push_bind(*code)
                    .push("null")
                    .push_bind(tx.currency)
                    .push("0")
                    .push_bind(at);
            });
            accounts.push(" on conflict (code) do nothing");
            accounts.build().execute(&mut *c).await?;
        }
        let mut entries = sqlx::QueryBuilder::new(
            "insert into ledger_entries (transaction_id, account_code, amount_cents) ",
        );
        entries.push_values(tx.entries, |mut row, (code, cents)| {
            row.push_bind(&id).push_bind(*code).push_bind(*cents);
        });
        entries.build().execute(&mut *c).await?;
        Ok::<_, sqlx::Error>(())
    })?;
    Ok(Posted::New(id))
}

/// A ledger transaction, unless one of its kind and reference exists: `$1` id, `$2` kind,
/// `$3` reference, `$4` rider, `$5` time; returns the id when inserted.
pub(crate) const INSERT_TRANSACTION: &str = "insert into ledger_transactions \
     (id, kind, reference, rider_id, created_at_ms) values ($1, $2, $3, $4, $5) \
     on conflict (kind, reference) do nothing returning id";
/// One entry: `$1` transaction, `$2` account, `$3` cents. A `select`, so that a chained
/// statement may follow it with `from` the transaction it inserted.
pub(crate) const INSERT_ENTRY: &str =
    "insert into ledger_entries (transaction_id, account_code, amount_cents) select $1, $2, $3";
/// An account opened on first use: `$1` code, `$2` currency, `$3` time.
const OPEN_ACCOUNT: &str = "insert into ledger_accounts \
     (code, owner_id, currency, version, created_at_ms) values ($1, null, $2, 0, $3) \
     on conflict (code) do nothing";

/// [`post`] on a SQLite handle, inside a transaction run by [`crate::db::raw::transaction`]:
/// one statement per entry, each a call into SQLite on this thread.
pub fn post_raw(c: &rusqlite::Connection, tx: &NewTransaction<'_>) -> Result<Posted, Error> {
    check_balanced(tx)?;
    let id = crate::ids::new_id("ltx");
    let at = tx.at.timestamp_millis();
    let args: [&dyn rusqlite::ToSql; 5] =
        [&id, &tx.kind.as_str(), &tx.reference, &tx.rider_id, &at];
    let inserted: Option<String> =
        raw::query_row(c, INSERT_TRANSACTION, &args, |r| r.get(0)).map_err(raw::into_sqlx)?;
    if inserted.is_none() {
        let existing: Option<String> =
            raw::query_row(c, FIND, &[&tx.kind.as_str(), &tx.reference], |r| r.get(0))
                .map_err(raw::into_sqlx)?;
        return existing.map(Posted::Already).ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "ledger transaction {} {} neither inserted nor found",
                tx.kind.as_str(),
                tx.reference
            ))
        });
    }
    let wallet = tx.rider_id.map(wallet_account);
    for (code, cents) in tx.entries {
        if !OPERATOR_ACCOUNTS.contains(code) && wallet.as_deref() != Some(*code) {
            raw::execute(c, OPEN_ACCOUNT, &[code, &tx.currency, &at]).map_err(raw::into_sqlx)?;
        }
        raw::execute(c, INSERT_ENTRY, &[&id, code, cents]).map_err(raw::into_sqlx)?;
    }
    Ok(Posted::New(id))
}

/// What an audit of the whole ledger found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Audit {
    pub transactions: i64,
    pub entries: i64,
    /// The sum of every entry: zero in a sound ledger.
    pub total_cents: i64,
    /// Transactions whose entries do not sum to zero.
    pub unbalanced: Vec<String>,
    /// Transactions with fewer than two entries.
    pub incomplete: Vec<String>,
}

impl Audit {
    pub fn is_sound(&self) -> bool {
        self.total_cents == 0 && self.unbalanced.is_empty() && self.incomplete.is_empty()
    }
}

/// Checks every transaction of the ledger: each has two entries or more, summing to zero.
pub async fn audit(db: &Db) -> Result<Audit, Error> {
    let (transactions, entries, total_cents, unbalanced, incomplete) = db_run!(db, |pool| {
        let transactions: i64 = sqlx::query_scalar("select count(*) from ledger_transactions")
            .fetch_one(pool)
            .await?;
        let (entries, total_cents): (i64, i64) = sqlx::query_as(
            "select count(*), cast(coalesce(sum(amount_cents), 0) as bigint) from ledger_entries",
        )
        .fetch_one(pool)
        .await?;
        let unbalanced: Vec<String> = sqlx::query_scalar(
            "select transaction_id from ledger_entries group by transaction_id \
             having sum(amount_cents) <> 0",
        )
        .fetch_all(pool)
        .await?;
        let incomplete: Vec<String> = sqlx::query_scalar(
            "select t.id from ledger_transactions t \
             left join ledger_entries e on e.transaction_id = t.id \
             group by t.id having count(e.id) < 2",
        )
        .fetch_all(pool)
        .await?;
        Ok::<_, sqlx::Error>((transactions, entries, total_cents, unbalanced, incomplete))
    })?;
    Ok(Audit {
        transactions,
        entries,
        total_cents,
        unbalanced,
        incomplete,
    })
}

/// True when the whole ledger balances: the check operators and tests rely on.
pub async fn ledger_sums_to_zero(db: &Db) -> Result<bool, Error> {
    Ok(audit(db).await?.is_sound())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx<'a>(entries: &'a [(&'a str, i64)]) -> NewTransaction<'a> {
        NewTransaction {
            kind: Kind::TopUp,
            reference: "pay_1",
            rider_id: None,
            currency: "EUR",
            at: DateTime::default(),
            entries,
        }
    }

    #[test]
    fn only_balanced_transactions_are_posted() {
        assert!(check_balanced(&tx(&[("a", 100), ("b", -100)])).is_ok());
        assert!(check_balanced(&tx(&[("a", 100), ("b", -60), ("c", -40)])).is_ok());
        assert!(check_balanced(&tx(&[("a", 100), ("b", -99)])).is_err());
        assert!(check_balanced(&tx(&[("a", 0), ("b", 0)])).is_err());
        assert!(check_balanced(&tx(&[])).is_err());
    }
}
