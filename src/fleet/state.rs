//! The vehicle state machine, aligned with MDS 2.0: states, the events that move a scooter
//! between them, and the one pure function that says where an event leads.

use serde::{Deserialize, Serialize};

/// Why a scooter is `non_operational`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The battery needs a swap before anyone can ride it.
    BatteryLow,
    /// A crew is repairing or inspecting it.
    Maintenance,
    /// The service is closed (outside operating hours).
    OffHours,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BatteryLow => "battery_low",
            Reason::Maintenance => "maintenance",
            Reason::OffHours => "off_hours",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "battery_low" => Some(Reason::BatteryLow),
            "maintenance" => Some(Reason::Maintenance),
            "off_hours" => Some(Reason::OffHours),
            _ => None,
        }
    }
}

/// Where a scooter stands (MDS 2.0 `vehicle_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScooterState {
    Available,
    Reserved,
    OnTrip,
    NonOperational(Reason),
    NonContactable,
    Removed,
}

impl ScooterState {
    /// The MDS name of the state, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ScooterState::Available => "available",
            ScooterState::Reserved => "reserved",
            ScooterState::OnTrip => "on_trip",
            ScooterState::NonOperational(_) => "non_operational",
            ScooterState::NonContactable => "non_contactable",
            ScooterState::Removed => "removed",
        }
    }

    pub fn reason(self) -> Option<Reason> {
        match self {
            ScooterState::NonOperational(reason) => Some(reason),
            _ => None,
        }
    }

    /// Reads a stored `(state, reason)` pair; `None` for anything this version does not know.
    pub fn parse(state: &str, reason: Option<&str>) -> Option<Self> {
        Some(match state {
            "available" => ScooterState::Available,
            "reserved" => ScooterState::Reserved,
            "on_trip" => ScooterState::OnTrip,
            "non_operational" => ScooterState::NonOperational(Reason::parse(reason?)?),
            "non_contactable" => ScooterState::NonContactable,
            "removed" => ScooterState::Removed,
            _ => return None,
        })
    }
}

/// Something that happens to a scooter (MDS 2.0 `event_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// Registered and put on the street by the operator.
    AgencyDropOff,
    ReservationStart,
    ReservationCancel,
    TripStart,
    TripEnd,
    TripCancel,
    /// Silent for longer than the configured time.
    CommsLost,
    /// Heard from again after being silent.
    CommsRestored,
    /// The service closed for the night.
    OffHours,
    /// The service opened again.
    OnHours,
    BatteryLow,
    BatteryCharged,
    Maintenance,
    MaintenanceEnd,
    /// Taken off the fleet for good.
    Decommissioned,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::AgencyDropOff => "agency_drop_off",
            Event::ReservationStart => "reservation_start",
            Event::ReservationCancel => "reservation_cancel",
            Event::TripStart => "trip_start",
            Event::TripEnd => "trip_end",
            Event::TripCancel => "trip_cancel",
            Event::CommsLost => "comms_lost",
            Event::CommsRestored => "comms_restored",
            Event::OffHours => "off_hours",
            Event::OnHours => "on_hours",
            Event::BatteryLow => "battery_low",
            Event::BatteryCharged => "battery_charged",
            Event::Maintenance => "maintenance",
            Event::MaintenanceEnd => "maintenance_end",
            Event::Decommissioned => "decommissioned",
        }
    }
}

/// The state `event` leads to from `from`, or `None` when the event makes no sense there.
///
/// Only an `available` scooter loses contact: one reserved or on a trip belongs to its ride
/// until the ride ends, and a non-operational one is not rentable either way, so silence
/// changes nothing for a rider there. A scooter that comes back is available again.
pub fn transition(from: ScooterState, event: Event) -> Option<ScooterState> {
    use Event as E;
    use ScooterState as S;
    let to = match (from, event) {
        (S::Available, E::ReservationStart) => S::Reserved,
        (S::Reserved, E::ReservationCancel) => S::Available,
        (S::Available | S::Reserved, E::TripStart) => S::OnTrip,
        (S::OnTrip, E::TripEnd | E::TripCancel) => S::Available,
        (S::Available, E::CommsLost) => S::NonContactable,
        (S::NonContactable, E::CommsRestored) => S::Available,
        (S::Available, E::OffHours) => S::NonOperational(Reason::OffHours),
        (S::NonOperational(Reason::OffHours), E::OnHours) => S::Available,
        (S::Available, E::BatteryLow) => S::NonOperational(Reason::BatteryLow),
        (S::NonOperational(Reason::BatteryLow), E::BatteryCharged) => S::Available,
        (S::Available | S::NonOperational(_) | S::NonContactable, E::Maintenance) => {
            S::NonOperational(Reason::Maintenance)
        }
        (S::NonOperational(Reason::Maintenance), E::MaintenanceEnd) => S::Available,
        (S::Removed, E::AgencyDropOff) => S::Available,
        (state, E::Decommissioned) if state != S::OnTrip && state != S::Removed => S::Removed,
        _ => return None,
    };
    Some(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use ScooterState as S;

    #[test]
    fn a_ride_goes_reserved_on_trip_and_back() {
        let reserved = transition(S::Available, E::ReservationStart).unwrap();
        assert_eq!(reserved, S::Reserved);
        let riding = transition(reserved, E::TripStart).unwrap();
        assert_eq!(riding, S::OnTrip);
        assert_eq!(transition(riding, E::TripEnd), Some(S::Available));
        assert_eq!(transition(S::Available, E::TripStart), Some(S::OnTrip));
    }

    #[test]
    fn a_taken_scooter_cannot_be_taken_again() {
        assert_eq!(transition(S::Reserved, E::ReservationStart), None);
        assert_eq!(transition(S::OnTrip, E::TripStart), None);
        assert_eq!(transition(S::OnTrip, E::ReservationStart), None);
        assert_eq!(
            transition(S::NonOperational(Reason::OffHours), E::TripStart),
            None
        );
        assert_eq!(transition(S::NonContactable, E::TripStart), None);
    }

    #[test]
    fn silence_and_return() {
        assert_eq!(
            transition(S::Available, E::CommsLost),
            Some(S::NonContactable)
        );
        assert_eq!(
            transition(S::NonContactable, E::CommsRestored),
            Some(S::Available)
        );
        // A ride keeps its scooter even when the scooter goes quiet.
        assert_eq!(transition(S::OnTrip, E::CommsLost), None);
        assert_eq!(
            transition(S::NonOperational(Reason::Maintenance), E::CommsLost),
            None
        );
    }

    #[test]
    fn hours_and_maintenance_need_the_matching_reason_to_end() {
        let closed = transition(S::Available, E::OffHours).unwrap();
        assert_eq!(closed, S::NonOperational(Reason::OffHours));
        assert_eq!(transition(closed, E::MaintenanceEnd), None);
        assert_eq!(transition(closed, E::OnHours), Some(S::Available));
        let repaired = transition(closed, E::Maintenance).unwrap();
        assert_eq!(repaired, S::NonOperational(Reason::Maintenance));
        assert_eq!(transition(repaired, E::OnHours), None);
        assert_eq!(transition(repaired, E::MaintenanceEnd), Some(S::Available));
    }

    #[test]
    fn removal_is_refused_mid_trip() {
        assert_eq!(transition(S::OnTrip, E::Decommissioned), None);
        assert_eq!(
            transition(S::Available, E::Decommissioned),
            Some(S::Removed)
        );
        assert_eq!(transition(S::Removed, E::Decommissioned), None);
        assert_eq!(transition(S::Removed, E::AgencyDropOff), Some(S::Available));
    }

    #[test]
    fn states_survive_storage() {
        for state in [
            S::Available,
            S::Reserved,
            S::OnTrip,
            S::NonOperational(Reason::BatteryLow),
            S::NonOperational(Reason::Maintenance),
            S::NonOperational(Reason::OffHours),
            S::NonContactable,
            S::Removed,
        ] {
            let reason = state.reason().map(Reason::as_str);
            assert_eq!(ScooterState::parse(state.as_str(), reason), Some(state));
        }
        assert_eq!(ScooterState::parse("non_operational", None), None);
        assert_eq!(ScooterState::parse("flying", None), None);
    }
}
