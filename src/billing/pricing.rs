//! Pricing: what a ride costs and who pays for it — pure functions over plain data.
//!
//! Every started minute is billed (a 0 s ride bills one minute, 60 s one, 61 s two), with no
//! minimum fee. The price is `billed_minutes × rate`, VAT included. It is covered first by the
//! free trial, then by prepaid pack minutes, then by the wallet, which may go negative: a debt
//! is allowed when a ride ends, and blocks the next unlock until it is paid.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

/// Rounds a price to cents, halves away from zero (commercial rounding).
pub fn round_cents(amount: Decimal) -> Decimal {
    let mut rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    rounded
}

/// Whole seconds between two instants, never negative. Instants are UTC, so midnight and
/// daylight-saving changes make no difference to a ride's length.
pub fn duration_s(started_at: DateTime<Utc>, ended_at: DateTime<Utc>) -> i64 {
    (ended_at - started_at).num_seconds().max(0)
}

/// Minutes billed for a ride of `duration_s` seconds: each started minute, at least one.
pub fn billed_minutes(duration_s: i64) -> i64 {
    let duration_s = duration_s.max(0);
    ((duration_s + 59) / 60).max(1)
}

/// The VAT contained in a VAT-inclusive `price` at `vat_rate` (0.20 for 20 %), to the cent.
pub fn vat_included(price: Decimal, vat_rate: Decimal) -> Decimal {
    if vat_rate <= Decimal::ZERO {
        return round_cents(Decimal::ZERO);
    }
    round_cents(price * vat_rate / (Decimal::ONE + vat_rate))
}

/// How a ride's price was covered, in the order it is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breakdown {
    pub billed_minutes: i64,
    /// The full price: `billed_minutes × rate`, to the cent.
    pub amount: Decimal,
    pub free_trial_minutes: i64,
    pub pack_minutes: i64,
    /// What the wallet pays: the minutes left × rate, to the cent.
    pub wallet_amount: Decimal,
    /// The wallet balance once the ride is paid; negative is a debt.
    pub balance_after: Decimal,
}

/// Splits a ride of `billed_minutes` between the free trial (`trial_minutes` still available),
/// the rider's `pack_minutes` and the wallet (`balance`), in that order. The wallet pays the
/// rest even when that leaves a debt: a ride that happened is always paid for.
pub fn split(
    billed_minutes: i64,
    rate: Decimal,
    trial_minutes: i64,
    pack_minutes: i64,
    balance: Decimal,
) -> Breakdown {
    let billed_minutes = billed_minutes.max(0);
    let free_trial_minutes = billed_minutes.min(trial_minutes.max(0));
    let after_trial = billed_minutes - free_trial_minutes;
    let from_packs = after_trial.min(pack_minutes.max(0));
    let from_wallet = after_trial - from_packs;
    let wallet_amount = round_cents(Decimal::from(from_wallet) * rate);
    Breakdown {
        billed_minutes,
        amount: round_cents(Decimal::from(billed_minutes) * rate),
        free_trial_minutes,
        pack_minutes: from_packs,
        wallet_amount,
        balance_after: round_cents(balance - wallet_amount),
    }
}

/// Why a rider may not start a ride: answered as 402 `payment_required`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentRequired {
    /// The wallet is negative: the last ride left a debt.
    Debt,
    /// No trial, no pack minutes, and the wallet is below the unlock minimum.
    BelowMinimum,
}

impl PaymentRequired {
    /// A sentence the rider can read.
    pub fn detail(self, unlock_minimum: Decimal, currency: &str) -> String {
        match self {
            PaymentRequired::Debt => {
                "Your wallet has an unpaid balance from a previous ride. Please top it up before your next ride.".to_owned()
            }
            PaymentRequired::BelowMinimum => format!(
                "To start a ride you need pack minutes or at least {} {currency} in your wallet. Please top it up or buy a pack.",
                round_cents(unlock_minimum)
            ),
        }
    }
}

/// Whether a rider may unlock a scooter: a debt always blocks; otherwise a free trial, pack
/// minutes or a wallet at or above `unlock_minimum` is enough.
pub fn can_unlock(
    trial_available: bool,
    pack_minutes: i64,
    balance: Decimal,
    unlock_minimum: Decimal,
) -> Result<(), PaymentRequired> {
    if balance < Decimal::ZERO {
        return Err(PaymentRequired::Debt);
    }
    if trial_available || pack_minutes > 0 || balance >= unlock_minimum {
        Ok(())
    } else {
        Err(PaymentRequired::BelowMinimum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Europe::Paris;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn each_started_minute_is_billed() {
        assert_eq!(billed_minutes(0), 1);
        assert_eq!(billed_minutes(10), 1);
        assert_eq!(billed_minutes(59), 1);
        assert_eq!(billed_minutes(60), 1);
        assert_eq!(billed_minutes(61), 2);
        assert_eq!(billed_minutes(120), 2);
        assert_eq!(billed_minutes(121), 3);
        assert_eq!(
            billed_minutes(-5),
            1,
            "a clock that went back bills one minute"
        );
    }

    #[test]
    fn durations_are_whole_seconds_between_instants() {
        let start = utc("2026-11-23T10:00:00Z");
        assert_eq!(duration_s(start, utc("2026-11-23T10:00:59.900Z")), 59);
        assert_eq!(
            billed_minutes(duration_s(start, utc("2026-11-23T10:01:00Z"))),
            1
        );
        assert_eq!(
            billed_minutes(duration_s(start, utc("2026-11-23T10:01:01Z"))),
            2
        );
        assert_eq!(duration_s(start, utc("2026-11-23T09:59:00Z")), 0);
    }

    #[test]
    fn a_ride_across_midnight_bills_its_real_length() {
        let start = utc("2026-11-23T22:58:30Z");
        let end = utc("2026-11-23T23:01:00Z"); // past midnight in Paris
        assert_eq!(duration_s(start, end), 150);
        assert_eq!(billed_minutes(duration_s(start, end)), 3);
    }

    #[test]
    fn a_ride_across_the_autumn_clock_change_bills_its_real_length() {
        // In Paris, 03:00 CEST on 25 October 2026 becomes 02:00 CET: the wall clock goes back.
        let start = Paris
            .with_ymd_and_hms(2026, 10, 25, 2, 50, 0)
            .earliest()
            .unwrap()
            .with_timezone(&Utc);
        let end = Paris
            .with_ymd_and_hms(2026, 10, 25, 2, 10, 0)
            .latest()
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(duration_s(start, end), 20 * 60);
        assert_eq!(billed_minutes(duration_s(start, end)), 20);
    }

    #[test]
    fn a_ride_across_the_spring_clock_change_bills_its_real_length() {
        // 02:00 CET on 29 March 2026 becomes 03:00 CEST: an hour of wall clock never happens.
        let start = Paris.with_ymd_and_hms(2026, 3, 29, 1, 55, 0).unwrap();
        let end = Paris.with_ymd_and_hms(2026, 3, 29, 3, 5, 1).unwrap();
        let seconds = duration_s(start.with_timezone(&Utc), end.with_timezone(&Utc));
        assert_eq!(seconds, 10 * 60 + 1);
        assert_eq!(billed_minutes(seconds), 11);
    }

    #[test]
    fn vat_is_the_included_share() {
        assert_eq!(vat_included(d("1.20"), d("0.20")), d("0.20"));
        assert_eq!(vat_included(d("0.28"), d("0.20")).to_string(), "0.05");
        assert_eq!(vat_included(d("12.00"), d("0.20")).to_string(), "2.00");
        assert_eq!(vat_included(d("4.20"), d("0")).to_string(), "0.00");
    }

    #[test]
    fn the_wallet_pays_when_nothing_else_does() {
        let b = split(10, d("0.28"), 0, 0, d("5.00"));
        assert_eq!(b.amount.to_string(), "2.80");
        assert_eq!((b.free_trial_minutes, b.pack_minutes), (0, 0));
        assert_eq!(b.wallet_amount.to_string(), "2.80");
        assert_eq!(b.balance_after.to_string(), "2.20");
    }

    #[test]
    fn trial_then_packs_then_wallet() {
        let b = split(40, d("0.28"), 15, 20, d("10.00"));
        assert_eq!(b.amount.to_string(), "11.20");
        assert_eq!(b.free_trial_minutes, 15);
        assert_eq!(b.pack_minutes, 20);
        assert_eq!(b.wallet_amount.to_string(), "1.40");
        assert_eq!(b.balance_after.to_string(), "8.60");

        let short = split(3, d("0.28"), 15, 20, d("10.00"));
        assert_eq!((short.free_trial_minutes, short.pack_minutes), (3, 0));
        assert_eq!(short.wallet_amount.to_string(), "0.00");
        assert_eq!(
            short.amount.to_string(),
            "0.84",
            "the price is shown in full"
        );

        let packs_only = split(12, d("0.28"), 0, 50, d("0"));
        assert_eq!(
            (packs_only.free_trial_minutes, packs_only.pack_minutes),
            (0, 12)
        );
        assert_eq!(packs_only.wallet_amount.to_string(), "0.00");
    }

    #[test]
    fn a_ride_dearer_than_the_wallet_leaves_a_debt() {
        let b = split(20, d("0.28"), 0, 5, d("1.00"));
        assert_eq!(b.pack_minutes, 5);
        assert_eq!(b.wallet_amount.to_string(), "4.20");
        assert_eq!(b.balance_after.to_string(), "-3.20");
        assert_eq!(
            can_unlock(false, 0, b.balance_after, d("1.00")),
            Err(PaymentRequired::Debt)
        );
    }

    #[test]
    fn rates_with_more_decimals_round_to_the_cent() {
        let b = split(3, d("0.275"), 0, 0, d("0"));
        assert_eq!(b.amount.to_string(), "0.83");
        assert_eq!(b.wallet_amount.to_string(), "0.83");
    }

    #[test]
    fn unlocking_needs_a_trial_packs_or_the_minimum() {
        let min = d("1.00");
        assert_eq!(can_unlock(true, 0, d("0"), min), Ok(()));
        assert_eq!(can_unlock(false, 3, d("0"), min), Ok(()));
        assert_eq!(can_unlock(false, 0, d("1.00"), min), Ok(()));
        assert_eq!(
            can_unlock(false, 0, d("0.99"), min),
            Err(PaymentRequired::BelowMinimum)
        );
        assert_eq!(
            can_unlock(true, 50, d("-0.01"), min),
            Err(PaymentRequired::Debt)
        );
        assert!(PaymentRequired::BelowMinimum
            .detail(min, "EUR")
            .contains("1.00 EUR"));
    }
}
