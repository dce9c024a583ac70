//! The operators' dashboard numbers: today's rides and revenue, the fleet's health, and
//! how fast battery swaps happen.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::Operator;
use crate::billing;
use crate::dispatch::kpis::{dispatch_kpis, DispatchKpis};
use crate::error::{ApiJson, Error, ProblemDocument};

/// Rides since local midnight (the operating hours' time zone).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RideKpis {
    pub since: String,
    pub rides: i64,
    pub minutes: i64,
    /// Decimal string: the full price of those rides, VAT included.
    pub revenue: String,
    pub currency: String,
    pub active_rides: i64,
    /// Share of the usable fleet (available, reserved or on a trip) on a trip now.
    pub utilisation: f64,
}

/// The fleet now.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FleetKpis {
    pub scooters: usize,
    pub by_state: BTreeMap<String, usize>,
    /// Scooters below the battery-swap threshold, and their share of the fleet.
    pub below_swap_threshold: usize,
    pub below_swap_threshold_share: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Kpis {
    pub rides: RideKpis,
    pub fleet: FleetKpis,
    pub dispatch: DispatchKpis,
}

/// Local midnight of `now` in the service's time zone, as UTC.
pub fn local_midnight(now: DateTime<Utc>, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let date = now.with_timezone(&tz).date_naive();
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now)
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        ((part as f64 / whole as f64) * 10_000.0).round() / 10_000.0
    }
}

/// Today's numbers for the console.
#[utoipa::path(
    get, path = "/v1/ops/kpis", tag = "operators", security(("bearer" = [])),
    responses(
        (status = 200, body = Kpis),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
pub async fn kpis(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<ApiJson<Kpis>, Error> {
    let now = state.clock.now();
    let since = local_midnight(now, state.hours.current().timezone);
    let (rides, minutes, revenue_cents, active_rides) =
        crate::rides::store::numbers_since(&state.db, since.timestamp_millis()).await?;
    let (by_state, below) = state
        .fleet
        .read()
        .census(state.config.dispatch.threshold_km);
    let scooters: usize = by_state.values().sum();
    let usable: usize = ["available", "reserved", "on_trip"]
        .iter()
        .filter_map(|s| by_state.get(s))
        .sum();
    let on_trip = by_state.get("on_trip").copied().unwrap_or(0);
    Ok(ApiJson(Kpis {
        rides: RideKpis {
            since: crate::clock::rfc3339(since),
            rides,
            minutes,
            revenue: billing::money(billing::from_cents(revenue_cents)),
            currency: state.tariff.current().currency.clone(),
            active_rides,
            utilisation: share(on_trip, usable),
        },
        fleet: FleetKpis {
            scooters,
            by_state: by_state
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            below_swap_threshold: below,
            below_swap_threshold_share: share(below, scooters),
        },
        dispatch: dispatch_kpis(&state).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_starts_at_local_midnight() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let midnight = local_midnight(now, chrono_tz::Europe::Paris);
        assert_eq!(crate::clock::rfc3339(midnight), "2026-11-22T23:00:00Z");
        let summer = DateTime::parse_from_rfc3339("2026-07-01T21:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            crate::clock::rfc3339(local_midnight(summer, chrono_tz::Europe::Paris)),
            "2026-06-30T22:00:00Z"
        );
        assert_eq!(share(1, 3), 0.3333);
        assert_eq!(share(1, 0), 0.0);
    }
}
