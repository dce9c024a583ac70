//! Rides: a rider unlocks a scooter, rides, parks inside the zone, and pays per started minute.
//!
//! The rules here are pure: which refusal an unlock gets, in the contract's order, and how a
//! ride's status moves. The database enforces what must hold across server processes (one
//! open ride per rider and per scooter).

pub mod commands;
pub mod holds;
pub mod http;
mod on_postgres;
mod on_sqlite;
pub mod reservations;
pub mod service;
pub mod store;
pub mod views;
pub mod workers;

use axum::http::StatusCode;

use crate::error::Error;

/// Where a ride stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RideStatus {
    /// Unlocked and running; billed when it ends.
    Active,
    /// Ended and billed.
    Ended,
    /// Never really started (the scooter did not unlock): nothing billed.
    Cancelled,
}

impl RideStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RideStatus::Active => "active",
            RideStatus::Ended => "ended",
            RideStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(RideStatus::Active),
            "ended" => Some(RideStatus::Ended),
            "cancelled" => Some(RideStatus::Cancelled),
            _ => None,
        }
    }
}

/// What an unlock request is checked against, gathered before any write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnlockFacts {
    pub scooter_exists: bool,
    pub rider_has_active_ride: bool,
    pub service_open: bool,
    /// Available, or reserved by this very rider.
    pub scooter_free_for_rider: bool,
    pub range_at_or_above_floor: bool,
    pub scooter_inside_zone: bool,
    /// A free trial, pack minutes, or a wallet at or above the unlock minimum (and no debt).
    pub rider_can_pay: bool,
}

/// Why an unlock is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnlockRefusal {
    ScooterNotFound,
    RiderHasActiveRide,
    OutsideOperatingHours,
    ScooterUnavailable,
    BatteryTooLow,
    ScooterOutsideZone,
    PaymentRequired,
}

/// The first refusal that applies, in the order the contract fixes; `None` to unlock.
pub fn unlock_refusal(facts: &UnlockFacts) -> Option<UnlockRefusal> {
    let checks = [
        (facts.scooter_exists, UnlockRefusal::ScooterNotFound),
        (
            !facts.rider_has_active_ride,
            UnlockRefusal::RiderHasActiveRide,
        ),
        (facts.service_open, UnlockRefusal::OutsideOperatingHours),
        (
            facts.scooter_free_for_rider,
            UnlockRefusal::ScooterUnavailable,
        ),
        (facts.range_at_or_above_floor, UnlockRefusal::BatteryTooLow),
        (facts.scooter_inside_zone, UnlockRefusal::ScooterOutsideZone),
        (facts.rider_can_pay, UnlockRefusal::PaymentRequired),
    ];
    checks
        .into_iter()
        .find_map(|(ok, refusal)| (!ok).then_some(refusal))
}

impl From<UnlockRefusal> for Error {
    fn from(refusal: UnlockRefusal) -> Self {
        let (status, code, detail) = match refusal {
            UnlockRefusal::ScooterNotFound => (
                StatusCode::NOT_FOUND,
                "scooter_not_found",
                "We could not find this scooter. Please check the code on its handlebar.",
            ),
            UnlockRefusal::RiderHasActiveRide => (
                StatusCode::CONFLICT,
                "rider_has_active_ride",
                "You already have a ride in progress. End it before starting another.",
            ),
            UnlockRefusal::OutsideOperatingHours => (
                StatusCode::FORBIDDEN,
                "outside_operating_hours",
                "The service is closed at this hour. Scooters can be unlocked again when it opens.",
            ),
            UnlockRefusal::ScooterUnavailable => (
                StatusCode::CONFLICT,
                "scooter_unavailable",
                "This scooter is not available right now. Please pick another one nearby.",
            ),
            UnlockRefusal::BatteryTooLow => (
                StatusCode::CONFLICT,
                "battery_too_low",
                "This scooter's battery is too low for a ride. Please pick another one nearby.",
            ),
            UnlockRefusal::ScooterOutsideZone => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "scooter_outside_zone",
                "This scooter is outside the service area, so it cannot be rented.",
            ),
            UnlockRefusal::PaymentRequired => (
                StatusCode::PAYMENT_REQUIRED,
                "payment_required",
                "Please top up your wallet or buy a minute pack before riding.",
            ),
        };
        Error::problem(status, code, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_OK: UnlockFacts = UnlockFacts {
        scooter_exists: true,
        rider_has_active_ride: false,
        service_open: true,
        scooter_free_for_rider: true,
        range_at_or_above_floor: true,
        scooter_inside_zone: true,
        rider_can_pay: true,
    };

    #[test]
    fn unlocks_when_everything_holds() {
        assert_eq!(unlock_refusal(&ALL_OK), None);
    }

    #[test]
    fn refusals_come_in_the_contract_order() {
        let nothing_holds = UnlockFacts {
            scooter_exists: false,
            rider_has_active_ride: true,
            service_open: false,
            scooter_free_for_rider: false,
            range_at_or_above_floor: false,
            scooter_inside_zone: false,
            rider_can_pay: false,
        };
        let mut facts = nothing_holds;
        let mut seen = Vec::new();
        while let Some(refusal) = unlock_refusal(&facts) {
            seen.push(refusal);
            match refusal {
                UnlockRefusal::ScooterNotFound => facts.scooter_exists = true,
                UnlockRefusal::RiderHasActiveRide => facts.rider_has_active_ride = false,
                UnlockRefusal::OutsideOperatingHours => facts.service_open = true,
                UnlockRefusal::ScooterUnavailable => facts.scooter_free_for_rider = true,
                UnlockRefusal::BatteryTooLow => facts.range_at_or_above_floor = true,
                UnlockRefusal::ScooterOutsideZone => facts.scooter_inside_zone = true,
                UnlockRefusal::PaymentRequired => facts.rider_can_pay = true,
            }
        }
        assert_eq!(
            seen,
            [
                UnlockRefusal::ScooterNotFound,
                UnlockRefusal::RiderHasActiveRide,
                UnlockRefusal::OutsideOperatingHours,
                UnlockRefusal::ScooterUnavailable,
                UnlockRefusal::BatteryTooLow,
                UnlockRefusal::ScooterOutsideZone,
                UnlockRefusal::PaymentRequired,
            ]
        );
    }

    #[test]
    fn statuses_round_trip() {
        for status in [RideStatus::Active, RideStatus::Ended, RideStatus::Cancelled] {
            assert_eq!(RideStatus::parse(status.as_str()), Some(status));
        }
    }
}
