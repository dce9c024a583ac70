//! `/v1/me/wallet`, `/v1/packs` and `/v1/me/packs`: the rider's money, through HTTP.
//!
//! Top-ups and pack purchases accept an `Idempotency-Key` (see [`crate::idempotency`]).
//! An unknown pack is 404 `pack_not_found`; a payment token the provider refuses — including
//! one it does not know — is 402 `payment_declined`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::payments::{ChargeRequest, PaymentError};
use super::{money, parse_amount, store, Wallet};
use crate::app::AppState;
use crate::auth::Rider;
use crate::error::{ApiJson, Error, ProblemDocument};
use crate::idempotency::{self, IdempotencyKey};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_wallet))
        .routes(routes!(list_packs))
        .routes(routes!(buy_pack))
        .routes(routes!(top_up))
}

/// A rider's wallet as the app shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WalletView {
    /// Decimal string, two decimals; negative when a ride left a debt.
    #[schema(example = "12.50")]
    pub balance: String,
    #[schema(example = "EUR")]
    pub currency: String,
    pub pack_minutes: i64,
    pub free_trial_available: bool,
    /// Free minutes the trial still offers (0 once used).
    pub free_trial_minutes: i64,
}

impl WalletView {
    fn new(wallet: &Wallet, currency: &str) -> Self {
        WalletView {
            balance: money(wallet.balance),
            currency: currency.to_owned(),
            pack_minutes: wallet.pack_minutes,
            free_trial_available: wallet.free_trial_available(),
            free_trial_minutes: wallet.free_trial_minutes,
        }
    }
}

/// The signed-in rider's wallet: balance, pack minutes and free trial.
#[utoipa::path(
    get, path = "/v1/me/wallet", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, body = WalletView),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
pub async fn get_wallet(
    State(state): State<AppState>,
    rider: Rider,
) -> Result<ApiJson<WalletView>, Error> {
    let tariff = state.tariff.current();
    let wallet = store::wallet(&state.db, &tariff, &rider.id).await?;
    Ok(ApiJson(WalletView::new(&wallet, &tariff.currency)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackView {
    pub pack_id: String,
    pub minutes: i64,
    #[schema(example = "12.00")]
    pub price: String,
    pub currency: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackList {
    pub packs: Vec<PackView>,
}

/// The minute packs on sale. Public.
#[utoipa::path(
    get, path = "/v1/packs", tag = "billing",
    responses((status = 200, body = PackList))
)]
pub async fn list_packs(State(state): State<AppState>) -> ApiJson<PackList> {
    let tariff = state.tariff.current();
    ApiJson(PackList {
        packs: tariff
            .packs
            .0
            .iter()
            .map(|p| PackView {
                pack_id: p.pack_id.clone(),
                minutes: p.minutes,
                price: money(p.price),
                currency: tariff.currency.clone(),
            })
            .collect(),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyPackRequest {
    pub pack_id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackPurchase {
    pub purchase_id: String,
    pub pack_id: String,
    pub minutes: i64,
    pub price: String,
    pub currency: String,
    /// The wallet after the purchase.
    pub wallet: WalletView,
}

/// Buys a minute pack from the wallet.
#[utoipa::path(
    post, path = "/v1/me/packs", tag = "billing", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer")),
    request_body = BuyPackRequest,
    responses(
        (status = 201, body = PackPurchase),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 402, description = "`insufficient_funds`", body = ProblemDocument),
        (status = 404, description = "`pack_not_found`", body = ProblemDocument),
        (status = 409, description = "`idempotency_key_in_progress`", body = ProblemDocument),
        (status = 422, description = "`idempotency_key_reused`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn buy_pack(
    State(state): State<AppState>,
    rider: Rider,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<BuyPackRequest>,
) -> Response {
    let fingerprint = idempotency::fingerprint("POST", "/v1/me/packs", &body);
    idempotency::once(&state, &rider.id, &key, fingerprint, || async {
        let tariff = state.tariff.current();
        let pack = tariff.packs.find(&body.pack_id).ok_or_else(|| {
            Error::not_found(
                "pack_not_found",
                "There is no pack with this id. See GET /v1/packs for the packs on sale.",
            )
        })?;
        let purchase_id = match &key.0 {
            Some(key) => idempotency::derived_id("pack", &rider.id, key),
            None => crate::ids::new_id("pack"),
        };
        let wallet = store::buy_pack(
            &state.db,
            &tariff,
            &rider.id,
            pack,
            &purchase_id,
            state.clock.now(),
        )
        .await?;
        Ok((
            StatusCode::CREATED,
            ApiJson(PackPurchase {
                purchase_id,
                pack_id: pack.pack_id.clone(),
                minutes: pack.minutes,
                price: money(pack.price),
                currency: tariff.currency.clone(),
                wallet: WalletView::new(&wallet, &tariff.currency),
            }),
        ))
    })
    .await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// Decimal string, more than 0 and at most the configured maximum (500.00 by default),
    /// two decimals at most.
    #[schema(example = "20.00")]
    pub amount: String,
    /// From the payment provider's card form; the test provider accepts `tok_test_ok`.
    pub payment_token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopUp {
    pub top_up_id: String,
    pub amount: String,
    /// The wallet balance after the top-up.
    pub balance: String,
    pub currency: String,
    pub pack_minutes: i64,
    pub free_trial_available: bool,
}

/// Adds money to the wallet through the payment provider.
#[utoipa::path(
    post, path = "/v1/me/wallet/top-ups", tag = "billing", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer")),
    request_body = TopUpRequest,
    responses(
        (status = 201, body = TopUp),
        (status = 400, description = "`invalid_request` (amount not positive, more than two decimals, above the maximum)", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 402, description = "`payment_declined`, also for unknown payment tokens", body = ProblemDocument),
        (status = 409, description = "`idempotency_key_in_progress`", body = ProblemDocument),
        (status = 422, description = "`idempotency_key_reused`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn top_up(
    State(state): State<AppState>,
    rider: Rider,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<TopUpRequest>,
) -> Response {
    let fingerprint = idempotency::fingerprint("POST", "/v1/me/wallet/top-ups", &body);
    idempotency::once(&state, &rider.id, &key, fingerprint, || async {
        let tariff = state.tariff.current();
        let amount = parse_amount(&body.amount, tariff.max_top_up).map_err(Error::invalid)?;
        if body.payment_token.is_empty() || body.payment_token.len() > 512 {
            return Err(Error::invalid("payment_token is required."));
        }
        let top_up_id = match &key.0 {
            Some(key) => idempotency::derived_id("topup", &rider.id, key),
            None => crate::ids::new_id("topup"),
        };
        let payment_id = state
            .payments
            .charge(ChargeRequest {
                rider_id: &rider.id,
                amount,
                currency: &tariff.currency,
                payment_token: &body.payment_token,
                reference: &top_up_id,
            })
            .await
            .map_err(|err| match err {
                PaymentError::Declined(reason) => {
                    Error::problem(StatusCode::PAYMENT_REQUIRED, "payment_declined", reason)
                }
                PaymentError::Failed(cause) => Error::Internal(cause),
            })?;
        let wallet = store::record_top_up(
            &state.db,
            &tariff,
            &rider.id,
            amount,
            &payment_id,
            state.clock.now(),
        )
        .await?;
        Ok((
            StatusCode::CREATED,
            ApiJson(TopUp {
                top_up_id,
                amount: money(amount),
                balance: money(wallet.balance),
                currency: tariff.currency.clone(),
                pack_minutes: wallet.pack_minutes,
                free_trial_available: wallet.free_trial_available(),
            }),
        ))
    })
    .await
}
