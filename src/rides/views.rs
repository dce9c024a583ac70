//! How rides, receipts and reservations look in the API.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::reservations::ReservationRow;
use super::store::RideRow;
use crate::billing::{self, Tariff};
use crate::clock::{from_millis, rfc3339};
use crate::error::Error;

/// How a ride was paid for.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Paid {
    pub free_trial_minutes: i64,
    pub pack_minutes: i64,
    /// Decimal string, two decimals.
    pub wallet_amount: String,
}

/// Something that happened during a ride.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RideEvent {
    /// `left_service_area`, `entered_service_area`, `speed_limited`, `speed_limit_lifted`.
    pub kind: String,
    pub lat: f64,
    pub lon: f64,
    pub at: String,
}

/// A ride. Fields after `status` appear once the ride has ended.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RideView {
    pub ride_id: String,
    pub scooter_id: String,
    /// `active`, `ended`, or `cancelled` (never billed).
    pub status: String,
    pub started_at: String,
    pub price_per_minute: String,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billed_minutes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid: Option<Paid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_id: Option<String>,
    /// Why a ride was cancelled, for the rider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// Something the rider should know now, e.g. that the scooter left the service area.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Speed limit in force for this scooter (a slow zone), km/h.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed_limit_kmh: Option<f64>,
    /// What happened during the ride (only on `GET /v1/rides/{ride_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<RideEvent>>,
}

/// The warning a rider sees while their scooter is outside the service area.
pub const OUTSIDE_ZONE_WARNING: &str = "Your scooter has left the service area. You can ride \
     on, but you will need to come back inside it to end your ride.";

impl RideView {
    pub fn from_row(ride: &RideRow) -> Self {
        let ended = ride.status == "ended";
        let active = ride.status == "active";
        RideView {
            ride_id: ride.id.clone(),
            scooter_id: ride.scooter_id.clone(),
            status: ride.status.clone(),
            started_at: rfc3339(from_millis(ride.started_at_ms)),
            price_per_minute: ride.price_per_minute.clone(),
            currency: ride.currency.clone(),
            ended_at: ride
                .ended_at_ms
                .filter(|_| !active)
                .map(|ms| rfc3339(from_millis(ms))),
            duration_s: ride.duration_s.filter(|_| !active),
            billed_minutes: ride.billed_minutes.filter(|_| ended),
            amount: ride
                .amount_cents
                .filter(|_| ended)
                .map(|c| billing::money(billing::from_cents(c))),
            paid: ended.then(|| Paid {
                free_trial_minutes: ride.trial_minutes.unwrap_or(0),
                pack_minutes: ride.pack_minutes.unwrap_or(0),
                wallet_amount: billing::money(billing::from_cents(ride.wallet_cents.unwrap_or(0))),
            }),
            receipt_id: ride.receipt_id.clone().filter(|_| ended),
            cancel_reason: ride.cancel_reason.clone(),
            warning: ride
                .outside_zone_since_ms
                .filter(|_| active)
                .map(|_| OUTSIDE_ZONE_WARNING.to_owned()),
            speed_limit_kmh: ride.speed_limit_kmh.filter(|_| active),
            events: None,
        }
    }
}

pub fn events(rows: &[(String, f64, f64, i64)]) -> Vec<RideEvent> {
    rows.iter()
        .map(|(kind, lat, lon, at_ms)| RideEvent {
            kind: kind.clone(),
            lat: *lat,
            lon: *lon,
            at: rfc3339(from_millis(*at_ms)),
        })
        .collect()
}

/// A place on a receipt.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Place {
    pub lat: f64,
    pub lon: f64,
}

/// What a rider paid for a ride, and how.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    pub receipt_id: String,
    pub ride_id: String,
    pub scooter_id: String,
    pub started_at: String,
    pub ended_at: String,
    pub duration_s: i64,
    pub billed_minutes: i64,
    pub price_per_minute: String,
    pub currency: String,
    /// The ride's full price, VAT included.
    pub amount: String,
    pub vat_rate: String,
    /// The VAT included in `amount`.
    pub vat_amount: String,
    pub amount_excluding_vat: String,
    pub paid: Paid,
    /// Insurance is part of the price: this line costs nothing extra.
    pub insurance: String,
    pub start: Place,
    pub end: Place,
    /// Who wrote this receipt and where to find people.
    pub note: String,
}

impl Receipt {
    pub fn from_row(ride: &RideRow, tariff: &Tariff) -> Result<Self, Error> {
        let missing = || {
            Error::Internal(anyhow::anyhow!(
                "ride {} has a receipt but no bill",
                ride.id
            ))
        };
        let amount = billing::from_cents(ride.amount_cents.ok_or_else(missing)?);
        let vat = billing::from_cents(ride.vat_cents.ok_or_else(missing)?);
        // The rate the ride was charged at; rides charged before it was kept show today's.
        let vat_rate = ride
            .vat_rate
            .as_deref()
            .and_then(|r| r.parse::<Decimal>().ok())
            .unwrap_or(tariff.vat_rate);
        let rate = (vat_rate * Decimal::ONE_HUNDRED).normalize();
        Ok(Receipt {
            receipt_id: ride.receipt_id.clone().ok_or_else(missing)?,
            ride_id: ride.id.clone(),
            scooter_id: ride.scooter_id.clone(),
            started_at: rfc3339(from_millis(ride.started_at_ms)),
            ended_at: rfc3339(from_millis(ride.ended_at_ms.ok_or_else(missing)?)),
            duration_s: ride.duration_s.unwrap_or(0),
            billed_minutes: ride.billed_minutes.unwrap_or(0),
            price_per_minute: ride.price_per_minute.clone(),
            currency: ride.currency.clone(),
            amount: billing::money(amount),
            vat_rate: format!("{rate}%"),
            vat_amount: billing::money(vat),
            amount_excluding_vat: billing::money(amount - vat),
            paid: Paid {
                free_trial_minutes: ride.trial_minutes.unwrap_or(0),
                pack_minutes: ride.pack_minutes.unwrap_or(0),
                wallet_amount: billing::money(billing::from_cents(ride.wallet_cents.unwrap_or(0))),
            },
            insurance: "Insurance included in the price, at no extra cost.".into(),
            start: Place {
                lat: ride.start_lat,
                lon: ride.start_lon,
            },
            end: Place {
                lat: ride.end_lat.unwrap_or(ride.start_lat),
                lon: ride.end_lon.unwrap_or(ride.start_lon),
            },
            note: "This receipt was prepared automatically by the scootfleet software. If \
                   something looks wrong, reply through the help pages in the app and a person \
                   from support will look at it."
                .into(),
        })
    }
}

/// A reservation.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ReservationView {
    pub reservation_id: String,
    pub scooter_id: String,
    /// `active`, `cancelled`, `expired`, or `converted` (into a ride).
    pub status: String,
    pub created_at: String,
    pub expires_at: String,
}

impl ReservationView {
    pub fn from_row(row: &ReservationRow) -> Self {
        ReservationView {
            reservation_id: row.id.clone(),
            scooter_id: row.scooter_id.clone(),
            status: row.status.clone(),
            created_at: rfc3339(from_millis(row.created_at_ms)),
            expires_at: rfc3339(from_millis(row.expires_at_ms)),
        }
    }
}
