//! The tariff: price per minute, VAT, free trial, unlock minimum and pack catalogue.
//!
//! It starts as configuration (version 0) and operators may replace it through the API;
//! every replacement is a new stored version and the highest one is in force. The same rules
//! ([`Tariff::problems`]) judge the configuration at start-up and an operator's edit, field
//! by field, so the console can show each refusal next to its field.
//!
//! A ride is billed at the price per minute quoted at its unlock (kept on the ride), so a
//! change never reaches rides in progress. Pack minutes already bought are the rider's,
//! whatever happens to the pack they came from.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio::sync::watch;

use super::PackCatalogue;
use crate::error::FieldError;

/// The prices in force.
#[derive(Clone, Debug)]
pub struct Tariff {
    /// 0 for the configuration's tariff, then 1, 2, … for the versions operators set.
    pub version: i64,
    /// When an operator set this version; `None` for the configuration's.
    pub updated_at: Option<DateTime<Utc>>,
    pub rate_per_minute: Decimal,
    pub currency: String,
    /// VAT included in every price, e.g. 0.20.
    pub vat_rate: Decimal,
    /// Free minutes of a new rider's first ride.
    pub free_trial_minutes: i64,
    /// Wallet balance needed to unlock when no trial or pack minutes are left.
    pub unlock_minimum: Decimal,
    /// The largest single top-up.
    pub max_top_up: Decimal,
    pub packs: PackCatalogue,
}

/// The most a price (per minute or of a pack) may be: a guard against a typo's extra zeros.
pub const MAX_PRICE: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// A pack id: 1 to 64 letters, digits, `_` or `-`.
pub fn pack_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Tariff {
    /// The tariff of `config`, refusing settings that make no sense.
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<Self> {
        let tariff = Tariff {
            version: 0,
            updated_at: None,
            rate_per_minute: config.price_per_minute,
            currency: config.currency.trim().to_ascii_uppercase(),
            vat_rate: config.vat_rate,
            free_trial_minutes: config.free_trial_minutes,
            unlock_minimum: config.unlock_minimum,
            max_top_up: config.max_top_up,
            packs: config.packs.clone(),
        };
        anyhow::ensure!(
            tariff.currency.len() == 3 && tariff.currency.bytes().all(|b| b.is_ascii_uppercase()),
            "the currency must be an ISO 4217 code such as EUR"
        );
        anyhow::ensure!(
            tariff.max_top_up > Decimal::ZERO,
            "the top-up maximum must be positive"
        );
        if let Some(problem) = tariff.problems().first() {
            anyhow::bail!("{}: {}", problem.field, problem.detail);
        }
        Ok(tariff)
    }

    /// What is wrong with the parts of this tariff operators may edit, field by field
    /// (empty when nothing is).
    pub fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.rate_per_minute <= Decimal::ZERO || self.rate_per_minute > MAX_PRICE {
            problems.push(FieldError::new(
                "rate_per_minute",
                "The price per minute must be more than 0.00 and at most 1000000.00.",
            ));
        }
        if self.vat_rate < Decimal::ZERO || self.vat_rate >= Decimal::ONE {
            problems.push(FieldError::new(
                "vat_rate",
                "The VAT rate is a fraction from 0 up to, not including, 1 (0.20 for 20 %).",
            ));
        }
        if self.free_trial_minutes < 0 {
            problems.push(FieldError::new(
                "free_trial_minutes",
                "Free trial minutes cannot be negative (0 for no trial).",
            ));
        }
        if self.unlock_minimum < Decimal::ZERO {
            problems.push(FieldError::new(
                "unlock_minimum",
                "The unlock minimum cannot be negative (0.00 for none).",
            ));
        }
        if self.packs.0.is_empty() {
            problems.push(FieldError::new(
                "packs",
                "The pack catalogue needs at least one pack.",
            ));
        }
        for (i, pack) in self.packs.0.iter().enumerate() {
            if !pack_id_ok(&pack.pack_id) {
                problems.push(FieldError::new(
                    format!("packs[{i}].pack_id"),
                    "A pack id is 1 to 64 letters, digits, `_` or `-`.",
                ));
            } else if self.packs.0[..i].iter().any(|p| p.pack_id == pack.pack_id) {
                problems.push(FieldError::new(
                    format!("packs[{i}].pack_id"),
                    format!("The pack id {:?} is listed twice.", pack.pack_id),
                ));
            }
            if pack.minutes <= 0 {
                problems.push(FieldError::new(
                    format!("packs[{i}].minutes"),
                    "A pack holds at least one minute.",
                ));
            }
            if pack.price <= Decimal::ZERO || pack.price > MAX_PRICE {
                problems.push(FieldError::new(
                    format!("packs[{i}].price"),
                    "A pack's price must be more than 0.00 and at most 1000000.00.",
                ));
            }
        }
        problems
    }
}

/// The tariff in force, shared by every request and worker.
///
/// Readers take a cheap `Arc` snapshot ([`Tariffs::current`]) and keep it for the whole
/// request, so an unlock quotes and checks against one tariff; a new version is swapped in
/// whole.
pub struct Tariffs {
    current: watch::Sender<Arc<Tariff>>,
}

impl Tariffs {
    pub fn new(tariff: Tariff) -> Self {
        Tariffs {
            current: watch::Sender::new(Arc::new(tariff)),
        }
    }

    /// The tariff in force now.
    pub fn current(&self) -> Arc<Tariff> {
        self.current.borrow().clone()
    }

    /// Puts `tariff` in force unless a newer version already is (two edits finishing out of
    /// order must not bring back the older one).
    pub fn replace(&self, tariff: Tariff) {
        let tariff = Arc::new(tariff);
        self.current.send_if_modified(|current| {
            if tariff.version > current.version {
                *current = tariff;
                true
            } else {
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Tariff {
        Tariff::from_config(&crate::config::Config::for_database("sqlite://x")).unwrap()
    }

    #[test]
    fn problems_name_each_wrong_field() {
        assert!(defaults().problems().is_empty());
        let mut tariff = defaults();
        tariff.rate_per_minute = Decimal::ZERO;
        tariff.vat_rate = Decimal::ONE;
        tariff.packs.0[1].price = Decimal::ZERO;
        tariff.packs.0[2].pack_id = tariff.packs.0[0].pack_id.clone();
        let fields: Vec<String> = tariff.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "rate_per_minute",
                "vat_rate",
                "packs[1].price",
                "packs[2].pack_id"
            ]
        );
        tariff.packs.0.clear();
        assert!(tariff.problems().iter().any(|p| p.field == "packs"));
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let tariffs = Tariffs::new(defaults());
        let mut v2 = defaults();
        v2.version = 2;
        v2.rate_per_minute = Decimal::new(30, 2);
        tariffs.replace(v2);
        let mut v1 = defaults();
        v1.version = 1;
        tariffs.replace(v1);
        assert_eq!(tariffs.current().version, 2);
        assert_eq!(tariffs.current().rate_per_minute, Decimal::new(30, 2));
    }
}
