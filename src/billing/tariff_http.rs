//! `/v1/ops/tariff`: operators read and replace the tariff and the pack catalogue.
//!
//! A refused edit is 422 `invalid_tariff` with every wrong field in `errors`
//! (`[{field: "packs[1].price", detail}]`), so the console shows each reason next to its
//! field. Fields are read by hand rather than by serde so that a wrong type is named too.

use std::str::FromStr;

use axum::extract::State;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tariff::MAX_PRICE;
use super::{money, tariff_store, Pack, PackCatalogue, Tariff};
use crate::app::AppState;
use crate::auth::Operator;
use crate::clock::rfc3339;
use crate::error::{ApiJson, Error, FieldError, ProblemDocument};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_tariff, put_tariff))
}

/// A pack of the catalogue, as operators edit it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackForm {
    #[serde(default)]
    #[schema(value_type = String, example = "pack_50")]
    pub pack_id: Value,
    #[serde(default)]
    #[schema(value_type = i64, example = 50)]
    pub minutes: Value,
    #[serde(default)]
    #[schema(value_type = String, example = "12.00")]
    pub price: Value,
}

/// The whole editable tariff; it replaces the one in force.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TariffForm {
    /// Price of a ride minute, VAT included: two decimals at most, more than 0.
    #[serde(default)]
    #[schema(value_type = String, example = "0.28")]
    pub rate_per_minute: Value,
    /// VAT included in prices, as a fraction from 0 to under 1.
    #[serde(default)]
    #[schema(value_type = String, example = "0.20")]
    pub vat_rate: Value,
    /// Free minutes of a new rider's first ride; 0 for no trial.
    #[serde(default)]
    #[schema(value_type = i64, example = 15)]
    pub free_trial_minutes: Value,
    /// Wallet balance needed to unlock without trial or pack minutes; "0.00" for none.
    #[serde(default)]
    #[schema(value_type = String, example = "1.00")]
    pub unlock_minimum: Value,
    /// The packs on sale, in the order riders see them; at least one. A pack taken off sale
    /// leaves the minutes riders bought in their wallets.
    #[serde(default)]
    pub packs: Vec<PackForm>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackEntry {
    pub pack_id: String,
    pub minutes: i64,
    #[schema(example = "12.00")]
    pub price: String,
}

/// The tariff in force.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TariffView {
    /// 0 while the configuration's tariff is in force; each edit adds one.
    pub version: i64,
    /// When an operator set it; absent for the configuration's tariff.
    pub updated_at: Option<String>,
    /// Set by configuration (`SCOOTFLEET_CURRENCY`), not editable here.
    pub currency: String,
    #[schema(example = "0.28")]
    pub rate_per_minute: String,
    #[schema(example = "0.20")]
    pub vat_rate: String,
    pub free_trial_minutes: i64,
    #[schema(example = "1.00")]
    pub unlock_minimum: String,
    /// Set by configuration (`SCOOTFLEET_MAX_TOP_UP`), not editable here.
    pub max_top_up: String,
    pub packs: Vec<PackEntry>,
}

impl TariffView {
    fn new(tariff: &Tariff) -> Self {
        let mut vat = tariff.vat_rate.normalize();
        if vat.scale() < 2 {
            vat.rescale(2);
        }
        TariffView {
            version: tariff.version,
            updated_at: tariff.updated_at.map(rfc3339),
            currency: tariff.currency.clone(),
            rate_per_minute: money(tariff.rate_per_minute),
            vat_rate: vat.to_string(),
            free_trial_minutes: tariff.free_trial_minutes,
            unlock_minimum: money(tariff.unlock_minimum),
            max_top_up: money(tariff.max_top_up),
            packs: tariff
                .packs
                .0
                .iter()
                .map(|p| PackEntry {
                    pack_id: p.pack_id.clone(),
                    minutes: p.minutes,
                    price: money(p.price),
                })
                .collect(),
        }
    }
}

/// The tariff in force, with its version.
#[utoipa::path(
    get, path = "/v1/ops/tariff", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, body = TariffView),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
pub async fn get_tariff(State(state): State<AppState>, _operator: Operator) -> ApiJson<TariffView> {
    ApiJson(TariffView::new(&state.tariff.current()))
}

/// Replaces the tariff and the pack catalogue, as a new version kept in the database.
///
/// New unlocks quote the new price at once, on every server sharing the database within
/// `SCOOTFLEET_ZONES_REFRESH_MS`; rides in progress keep the price quoted at their unlock.
#[utoipa::path(
    put, path = "/v1/ops/tariff", tag = "billing", security(("bearer" = [])),
    request_body = TariffForm,
    responses(
        (status = 200, body = TariffView),
        (status = 400, description = "`invalid_request`: not JSON, unknown field", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 422, description = "`invalid_tariff`, each wrong field in `errors`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn put_tariff(
    State(state): State<AppState>,
    operator: Operator,
    ApiJson(form): ApiJson<TariffForm>,
) -> Result<ApiJson<TariffView>, Error> {
    let current = state.tariff.current();
    let mut tariff = read_form(&form, &current).map_err(|errors| Error::Fields {
        code: "invalid_tariff",
        detail: format!(
            "The tariff was not changed: {}",
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.detail))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        errors,
    })?;
    let now = state.clock.now();
    tariff.version = tariff_store::insert(&state.db, &tariff, &operator.id, now).await?;
    tariff.updated_at = Some(now);
    tracing::info!(
        version = tariff.version,
        rate_per_minute = %tariff.rate_per_minute,
        packs = %tariff.packs,
        "new tariff"
    );
    let view = TariffView::new(&tariff);
    state.tariff.replace(tariff);
    Ok(ApiJson(view))
}

/// The tariff `form` describes (currency and top-up maximum kept from `current`), or every
/// wrong field.
fn read_form(form: &TariffForm, current: &Tariff) -> Result<Tariff, Vec<FieldError>> {
    let mut errors = Vec::new();
    let rate_per_minute = take(
        &mut errors,
        price("rate_per_minute", &form.rate_per_minute, false),
        current.rate_per_minute,
    );
    let vat_rate = take(
        &mut errors,
        fraction("vat_rate", &form.vat_rate),
        current.vat_rate,
    );
    let free_trial_minutes = take(
        &mut errors,
        minutes("free_trial_minutes", &form.free_trial_minutes),
        current.free_trial_minutes,
    );
    let unlock_minimum = take(
        &mut errors,
        price("unlock_minimum", &form.unlock_minimum, true),
        current.unlock_minimum,
    );
    let mut packs = Vec::new();
    for (i, pack) in form.packs.iter().enumerate() {
        let field = |name: &str| format!("packs[{i}].{name}");
        let pack_id = match &pack.pack_id {
            Value::String(id) => id.trim().to_owned(),
            _ => {
                errors.push(FieldError::new(field("pack_id"), "Write the pack's id."));
                format!("unreadable-{i}")
            }
        };
        packs.push(Pack {
            pack_id,
            minutes: take(&mut errors, minutes(&field("minutes"), &pack.minutes), 1),
            price: take(
                &mut errors,
                price(&field("price"), &pack.price, false),
                Decimal::ONE,
            ),
        });
    }
    let tariff = Tariff {
        rate_per_minute,
        vat_rate,
        free_trial_minutes,
        unlock_minimum,
        packs: PackCatalogue(packs),
        ..current.clone()
    };
    // A field already refused for its form is not judged again on its stand-in value.
    for problem in tariff.problems() {
        if !errors.iter().any(|e| e.field == problem.field) {
            errors.push(problem);
        }
    }
    if errors.is_empty() {
        Ok(tariff)
    } else {
        Err(errors)
    }
}

/// The value of `result`, or `fallback` with the refusal noted in `errors`.
fn take<T>(errors: &mut Vec<FieldError>, result: Result<T, FieldError>, fallback: T) -> T {
    result.unwrap_or_else(|e| {
        errors.push(e);
        fallback
    })
}

/// A price: a string of digits with at most two decimals, more than 0 (or 0 when
/// `zero_allowed`), at most [`MAX_PRICE`].
fn price(field: &str, value: &Value, zero_allowed: bool) -> Result<Decimal, FieldError> {
    let refuse = || {
        let least = if zero_allowed {
            "0.00 or more"
        } else {
            "more than 0.00"
        };
        FieldError::new(
            field,
            format!("Write an amount with at most two decimals, {least}, like \"1.00\"."),
        )
    };
    let Value::String(text) = value else {
        return Err(refuse());
    };
    let text = text.trim();
    if zero_allowed && is_decimal(text, 2) && Decimal::from_str(text) == Ok(Decimal::ZERO) {
        return Ok(Decimal::ZERO);
    }
    super::parse_amount(text, MAX_PRICE).map_err(|_| refuse())
}

/// A fraction such as the VAT rate: digits with at most four decimals.
fn fraction(field: &str, value: &Value) -> Result<Decimal, FieldError> {
    let refuse = || {
        FieldError::new(
            field,
            "Write the rate as a fraction like \"0.20\" (for 20 %), from 0 to under 1.",
        )
    };
    match value {
        Value::String(text) if is_decimal(text.trim(), 4) => {
            Decimal::from_str(text.trim()).map_err(|_| refuse())
        }
        _ => Err(refuse()),
    }
}

/// A whole number of minutes, as a JSON integer.
fn minutes(field: &str, value: &Value) -> Result<i64, FieldError> {
    value
        .as_i64()
        .ok_or_else(|| FieldError::new(field, "Write a whole number of minutes."))
}

/// Digits, then optionally a point and 1 to `decimals` digits.
fn is_decimal(text: &str, decimals: usize) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    !whole.is_empty()
        && whole.len() <= 12
        && whole.bytes().all(|b| b.is_ascii_digit())
        && !fraction.is_empty()
        && fraction.len() <= decimals
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn current() -> Tariff {
        Tariff::from_config(&crate::config::Config::for_database("sqlite://x")).unwrap()
    }

    fn form(value: Value) -> TariffForm {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_good_form_becomes_the_tariff() {
        let tariff = read_form(
            &form(json!({
                "rate_per_minute": "0.30", "vat_rate": "0.055", "free_trial_minutes": 0,
                "unlock_minimum": "0", "packs": [{"pack_id": "p", "minutes": 10, "price": "2.5"}]
            })),
            &current(),
        )
        .unwrap();
        assert_eq!(tariff.rate_per_minute, Decimal::new(30, 2));
        assert_eq!(tariff.vat_rate, Decimal::new(55, 3));
        assert_eq!(tariff.unlock_minimum, Decimal::ZERO);
        assert_eq!(tariff.packs.to_string(), "p:10:2.50");
        assert_eq!(tariff.currency, "EUR");
    }

    #[test]
    fn every_wrong_field_is_named_once() {
        let errors = read_form(
            &form(json!({
                "rate_per_minute": 0.3, "vat_rate": "1.5", "free_trial_minutes": -1,
                "unlock_minimum": "-1.00",
                "packs": [{"pack_id": "a b", "minutes": "ten", "price": "0.00"},
                          {"pack_id": "ok", "minutes": 5, "price": "1.234"}]
            })),
            &current(),
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rate_per_minute",
                "unlock_minimum",
                "packs[0].minutes",
                "packs[0].price",
                "packs[1].price",
                "vat_rate",
                "free_trial_minutes",
                "packs[0].pack_id"
            ]
        );
        let missing = read_form(&form(json!({})), &current()).unwrap_err();
        assert!(missing.iter().any(|e| e.field == "packs"));
        assert!(missing.iter().any(|e| e.field == "rate_per_minute"));
    }
}
