//! Billing: the tariff, the pack catalogue, the wallet and its double-entry ledger.
//!
//! Money is `rust_decimal` in the code, integer cents in the database and decimal strings
//! with two decimals (`"0.28"`) plus a currency in JSON.
//!
//! # Charging a ride from another domain
//!
//! A ride's end and its charge must commit together, so [`charge::charge_ride`] runs on a
//! connection of a transaction the caller opened, on either engine, through [`Conn`]:
//!
//! ```ignore
//! use scootfleet::billing::{self, Conn, RideCharge};
//! let charged = db_run!(&state.db, |pool| {
//!     let mut tx = pool.begin().await?;
//!     // … mark the ride ended on `&mut *tx` …
//!     let charged = billing::charge::charge_ride(
//!         Conn::from(&mut *tx),
//!         &state.tariff,
//!         &RideCharge { rider_id, ride_id, duration_s, rate_per_minute, at: now },
//!     )
//!     .await?;
//!     tx.commit().await?;
//!     Ok::<_, Error>(charged)
//! })?;
//! // charged.breakdown: billed_minutes, amount, free_trial_minutes, pack_minutes, wallet_amount
//! ```
//!
//! `charge_ride` starts by locking the rider's wallet row (an upsert), so charges and
//! purchases on one wallet never interleave. On SQLite a transaction that reads before its
//! first write can fail with "database is locked" under load: make the ride's own first
//! statement a write (e.g. the conditional `update rides … where status = 'active'`).
//!
//! Charging is idempotent per ride (a second call returns the first charge), records the use
//! of the free trial, takes pack minutes and posts the wallet part to the ledger, all on the
//! caller's connection (or, on SQLite, on the writer's handle: [`charge::charge_ride_raw`]). [`store::charged_ride`] reads it back for receipts.
//!
//! Before an unlock, [`store::wallet`] gives the rider's [`Wallet`] and
//! [`Wallet::can_unlock`] says whether they may ride (402 `payment_required` otherwise).
//!
//! [`charge::charge_ride`]: crate::billing::charge::charge_ride
//! [`Conn`]: crate::billing::Conn
//! [`charge::charge_ride_raw`]: crate::billing::charge::charge_ride_raw
//! [`store::charged_ride`]: crate::billing::store::charged_ride
//! [`store::wallet`]: crate::billing::store::wallet
//! [`Wallet`]: crate::billing::Wallet
//! [`Wallet::can_unlock`]: crate::billing::Wallet::can_unlock

pub mod adjust;
pub mod charge;
pub mod http;
pub mod ledger;
pub mod payments;
pub mod pricing;
pub mod store;
pub mod tariff;
pub mod tariff_http;
pub mod tariff_store;

use std::fmt;
use std::str::FromStr;

use axum::http::StatusCode;
use rust_decimal::Decimal;

pub use crate::db::Conn;
use crate::error::Error;
pub use pricing::{Breakdown, PaymentRequired};
pub use tariff::{Tariff, Tariffs};

/// Cents, the form money takes in the database, from a decimal amount.
pub fn to_cents(amount: Decimal) -> i64 {
    let cents = pricing::round_cents(amount).mantissa();
    i64::try_from(cents).unwrap_or(if cents < 0 { i64::MIN } else { i64::MAX })
}

/// The decimal amount of `cents`.
pub fn from_cents(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// An amount as the API shows it: two decimals, e.g. `"0.28"`.
pub fn money(amount: Decimal) -> String {
    let mut amount = pricing::round_cents(amount);
    if amount.is_zero() {
        // Never show "-0.00".
        amount.set_sign_positive(true);
    }
    amount.to_string()
}

/// Parses an amount sent by a client: digits with at most two decimals (`"10"`, `"10.5"`,
/// `"10.50"`), strictly positive and at most `max`.
pub fn parse_amount(text: &str, max: Decimal) -> Result<Decimal, String> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let well_formed = !whole.is_empty()
        && whole.len() <= 12
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.len() <= 2
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && !(text.contains('.') && fraction.is_empty());
    if !well_formed {
        return Err(format!(
            "amount must be a decimal string with at most two decimals, like \"10.00\"; got {text:?}."
        ));
    }
    let amount =
        Decimal::from_str(text).map_err(|_| format!("amount {text:?} is not a number."))?;
    if amount <= Decimal::ZERO {
        return Err("amount must be more than 0.00.".to_owned());
    }
    if amount > max {
        return Err(format!("amount may be at most {}.", money(max)));
    }
    Ok(pricing::round_cents(amount))
}

/// A prepaid bundle of ride minutes, bought from the wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pack {
    pub pack_id: String,
    pub minutes: i64,
    pub price: Decimal,
}

/// The packs on sale, in the order they are listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackCatalogue(pub Vec<Pack>);

impl PackCatalogue {
    pub fn find(&self, pack_id: &str) -> Option<&Pack> {
        self.0.iter().find(|p| p.pack_id == pack_id)
    }
}

/// Why a pack catalogue setting could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid pack catalogue: {0} (expected `id:minutes:price,…`, e.g. `pack_50:50:12.00`)")]
pub struct PackCatalogueError(String);

impl FromStr for PackCatalogue {
    type Err = PackCatalogueError;

    /// Reads `pack_50:50:12.00,pack_100:100:22.00`: id, minutes and price of each pack.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut packs: Vec<Pack> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let parts: Vec<&str> = item.split(':').map(str::trim).collect();
            let [id, minutes, price] = parts[..] else {
                return Err(PackCatalogueError(format!(
                    "`{item}` is not id:minutes:price"
                )));
            };
            if !tariff::pack_id_ok(id) {
                return Err(PackCatalogueError(format!("pack id `{id}`")));
            }
            let minutes = minutes
                .parse::<i64>()
                .ok()
                .filter(|m| *m > 0)
                .ok_or_else(|| PackCatalogueError(format!("minutes `{minutes}` of `{id}`")))?;
            let price = parse_amount(price, Decimal::from(1_000_000))
                .map_err(|_| PackCatalogueError(format!("price `{price}` of `{id}`")))?;
            if packs.iter().any(|p| p.pack_id == id) {
                return Err(PackCatalogueError(format!("`{id}` is listed twice")));
            }
            packs.push(Pack {
                pack_id: id.to_owned(),
                minutes,
                price,
            });
        }
        Ok(PackCatalogue(packs))
    }
}

impl fmt::Display for PackCatalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|p| format!("{}:{}:{}", p.pack_id, p.minutes, money(p.price)))
            .collect();
        f.write_str(&items.join(","))
    }
}

/// What a rider has to pay with: the wallet balance (negative is a debt), pack minutes, and
/// the free trial if their first ride has not been charged yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wallet {
    pub balance: Decimal,
    pub pack_minutes: i64,
    /// Free minutes still available for the first ride (0 once it is charged).
    pub free_trial_minutes: i64,
}

impl Wallet {
    /// The wallet from its sums: balance in cents, pack minutes, and free-trial uses so far,
    /// under a tariff offering `trial_minutes` to a first ride.
    pub fn from_sums(
        trial_minutes: i64,
        balance_cents: i64,
        pack_minutes: i64,
        trial_uses: i64,
    ) -> Self {
        Wallet {
            balance: from_cents(balance_cents),
            pack_minutes,
            free_trial_minutes: if trial_uses > 0 { 0 } else { trial_minutes },
        }
    }

    pub fn free_trial_available(&self) -> bool {
        self.free_trial_minutes > 0
    }

    /// Whether this rider may start a ride: 402 `payment_required` with the reason if not.
    pub fn can_unlock(&self, tariff: &Tariff) -> Result<(), Error> {
        pricing::can_unlock(
            self.free_trial_available(),
            self.pack_minutes,
            self.balance,
            tariff.unlock_minimum,
        )
        .map_err(|reason| {
            Error::problem(
                StatusCode::PAYMENT_REQUIRED,
                "payment_required",
                reason.detail(tariff.unlock_minimum, &tariff.currency),
            )
        })
    }
}

/// The ride to charge, as the rides domain knows it when the ride ends.
#[derive(Clone, Debug)]
pub struct RideCharge<'a> {
    pub rider_id: &'a str,
    pub ride_id: &'a str,
    pub duration_s: i64,
    /// The price per minute quoted at unlock: a ride is billed at the rate the rider was
    /// shown, whatever the tariff has become since.
    pub rate_per_minute: Decimal,
    /// The VAT rate in force at unlock.
    pub vat_rate: Decimal,
    /// The free minutes offered at unlock, if this turns out to be the rider's first ride.
    pub free_trial_minutes: i64,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn cents_round_trip() {
        assert_eq!(to_cents(d("0.28")), 28);
        assert_eq!(to_cents(d("-3.2")), -320);
        assert_eq!(from_cents(1234), d("12.34"));
        assert_eq!(money(from_cents(5)), "0.05");
        assert_eq!(money(Decimal::ZERO), "0.00");
        assert_eq!(money(d("12")), "12.00");
        assert_eq!(money(d("0.60") - d("0.60")), "0.00");
        assert_eq!(money(-Decimal::ZERO), "0.00");
    }

    #[test]
    fn amounts_are_strict() {
        let max = d("500.00");
        assert_eq!(parse_amount("10", max), Ok(d("10.00")));
        assert_eq!(parse_amount("10.5", max).map(money), Ok("10.50".into()));
        assert_eq!(parse_amount("500.00", max), Ok(d("500")));
        for bad in [
            "", "0", "0.00", "-1", "10.001", "1e3", " 10", "10.", ".5", "+5", "abc", "500.01",
            "NaN", "1,5",
        ] {
            assert!(parse_amount(bad, max).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn catalogues_are_read_and_checked() {
        let c: PackCatalogue = "pack_50:50:12.00, pack_100:100:22".parse().unwrap();
        assert_eq!(c.0.len(), 2);
        assert_eq!(c.find("pack_100").unwrap().price, d("22.00"));
        assert_eq!(c.to_string(), "pack_50:50:12.00,pack_100:100:22.00");
        for bad in ["x:0:1.00", "x:5", "x:5:-1", "x y:5:1.00", "a:5:1,a:6:2"] {
            assert!(bad.parse::<PackCatalogue>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_tariff_comes_from_flags_or_environment() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: crate::config::Config,
        }
        let defaults = Tariff::from_config(&Cli::parse_from(["scootfleet"]).config).unwrap();
        assert_eq!(defaults.rate_per_minute, d("0.28"));
        assert_eq!(defaults.currency, "EUR");
        assert_eq!(defaults.vat_rate, d("0.20"));
        assert_eq!(defaults.free_trial_minutes, 15);
        assert_eq!(defaults.unlock_minimum, d("1.00"));
        assert_eq!(defaults.packs.0.len(), 3);
        for pack in &defaults.packs.0 {
            assert!(pack.price / Decimal::from(pack.minutes) < defaults.rate_per_minute);
        }

        let cli = Cli::parse_from([
            "scootfleet",
            "--price-per-minute",
            "0.30",
            "--free-trial-minutes",
            "0",
            "--packs",
            "city_30:30:7.50",
        ]);
        let tariff = Tariff::from_config(&cli.config).unwrap();
        assert_eq!(tariff.rate_per_minute, d("0.30"));
        assert_eq!(tariff.free_trial_minutes, 0);
        assert_eq!(tariff.packs.find("city_30").unwrap().minutes, 30);
        assert!(Cli::try_parse_from(["scootfleet", "--packs", "broken"]).is_err());
        let mut config = cli.config;
        config.price_per_minute = Decimal::ZERO;
        assert!(Tariff::from_config(&config).is_err());
    }

    #[test]
    fn wallets_block_on_debt() {
        let tariff =
            Tariff::from_config(&crate::config::Config::for_database("sqlite://x")).unwrap();
        let wallet = Wallet {
            balance: d("-0.28"),
            pack_minutes: 100,
            free_trial_minutes: 0,
        };
        assert!(wallet.can_unlock(&tariff).is_err());
        let fresh = Wallet {
            balance: Decimal::ZERO,
            pack_minutes: 0,
            free_trial_minutes: 15,
        };
        assert!(fresh.can_unlock(&tariff).is_ok());
    }
}
