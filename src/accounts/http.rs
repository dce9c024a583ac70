//! `/v1/auth`: signup and login.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, NewAccount};
use super::{is_valid_email, normalize_email, password_weakness};
use crate::app::AppState;
use crate::auth::{hash_password, verify_password, Operator, Rider, Role};
use crate::error::{ApiJson, Error, ProblemDocument};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(me))
        .routes(routes!(create_crew))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Marketing messages are opt-in: off unless the rider says yes.
    #[serde(default)]
    pub marketing_opt_in: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SignupResponse {
    pub rider_id: String,
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub role: Role,
}

const MAX_DISPLAY_NAME_CHARS: usize = 80;

/// The normalised email, once it and the password pass the rules for a new account.
fn checked_credentials(email: &str, password: &str) -> Result<String, Error> {
    let email = normalize_email(email);
    if !is_valid_email(&email) {
        return Err(Error::unprocessable(
            "invalid_email",
            "This does not look like an email address; please check it.",
        ));
    }
    if let Some(reason) = password_weakness(password, &email) {
        return Err(Error::unprocessable("weak_password", reason));
    }
    Ok(email)
}

/// Creates a rider account and signs it in.
#[utoipa::path(
    post, path = "/v1/auth/signup", tag = "accounts",
    request_body = SignupRequest,
    responses(
        (status = 201, body = SignupResponse),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 409, description = "`email_taken`", body = ProblemDocument),
        (status = 422, description = "`weak_password` or `invalid_email`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn signup(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SignupRequest>,
) -> Result<(StatusCode, ApiJson<SignupResponse>), Error> {
    let email = checked_credentials(&body.email, &body.password)?;
    let display_name = body
        .display_name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty());
    if display_name.is_some_and(|n| n.chars().count() > MAX_DISPLAY_NAME_CHARS) {
        return Err(Error::invalid(format!(
            "display_name is limited to {MAX_DISPLAY_NAME_CHARS} characters."
        )));
    }
    let now = state.clock.now();
    let password_hash = hash_password(body.password).await?;
    let id = crate::ids::new_id("rider");
    let created = store::insert_account(
        &state.db,
        &NewAccount {
            id: &id,
            email: &email,
            password_hash: &password_hash,
            role: Role::Rider,
            display_name,
            marketing_opt_in: body.marketing_opt_in.unwrap_or(false),
            created_at: now,
        },
    )
    .await?;
    if !created {
        return Err(Error::conflict(
            "email_taken",
            "An account already uses this email address. Try signing in instead.",
        ));
    }
    let issued = state.tokens.issue(&id, Role::Rider, now)?;
    Ok((
        StatusCode::CREATED,
        ApiJson(SignupResponse {
            rider_id: id,
            access_token: issued.token,
            token_type: "Bearer".into(),
            expires_in: issued.expires_in,
        }),
    ))
}

/// Signs in a rider, crew member or operator.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`invalid_credentials`, the same for an unknown email and a wrong password", body = ProblemDocument),
        (status = 429, description = "`too_many_requests`, with `Retry-After`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<ApiJson<LoginResponse>, Error> {
    let email = normalize_email(&body.email);
    let now = state.clock.now();
    let address = peer.ip();
    if let Some(retry_after_secs) = state.login_limiter.blocked(&email, address, now) {
        return Err(Error::TooManyRequests { retry_after_secs });
    }
    let account = store::credentials(&state.db, &email).await?;
    let stored_hash = account.as_ref().map(|a| a.password_hash.clone());
    let verified = verify_password(body.password, stored_hash).await?;
    let role = account.as_ref().and_then(|a| Role::parse(&a.role));
    match (verified, account, role) {
        (true, Some(account), Some(role)) => {
            state.login_limiter.record_success(&email);
            let issued = state.tokens.issue(&account.id, role, now)?;
            Ok(ApiJson(LoginResponse {
                access_token: issued.token,
                token_type: "Bearer".into(),
                expires_in: issued.expires_in,
                role,
            }))
        }
        _ => {
            state.login_limiter.record_failure(&email, address, now);
            Err(Error::problem(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "The email or the password is not right.",
            ))
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Profile {
    pub rider_id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub marketing_opt_in: bool,
    pub created_at: String,
}

/// The signed-in rider's own account.
#[utoipa::path(
    get, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, body = Profile),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
pub async fn me(State(state): State<AppState>, rider: Rider) -> Result<ApiJson<Profile>, Error> {
    let account = store::profile(&state.db, &rider.id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    Ok(ApiJson(Profile {
        rider_id: account.id,
        email: account.email,
        display_name: account.display_name,
        marketing_opt_in: account.marketing_opt_in,
        created_at: crate::clock::rfc3339(crate::clock::from_millis(account.created_at_ms)),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCrewRequest {
    pub name: String,
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewCrewResponse {
    pub crew_id: String,
}

/// Creates a crew member's account; they sign in with `/v1/auth/login`.
#[utoipa::path(
    post, path = "/v1/ops/crews", tag = "crews", security(("bearer" = [])),
    request_body = NewCrewRequest,
    responses(
        (status = 201, body = NewCrewResponse),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 409, description = "`email_taken`", body = ProblemDocument),
        (status = 422, description = "`weak_password` or `invalid_email`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn create_crew(
    State(state): State<AppState>,
    _operator: Operator,
    ApiJson(body): ApiJson<NewCrewRequest>,
) -> Result<(StatusCode, ApiJson<NewCrewResponse>), Error> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(Error::invalid(format!(
            "name is required, at most {MAX_DISPLAY_NAME_CHARS} characters."
        )));
    }
    let email = checked_credentials(&body.email, &body.password)?;
    let password_hash = hash_password(body.password).await?;
    let id = crate::ids::new_id("crew");
    let created = store::insert_account(
        &state.db,
        &NewAccount {
            id: &id,
            email: &email,
            password_hash: &password_hash,
            role: Role::Crew,
            display_name: Some(name),
            marketing_opt_in: false,
            created_at: state.clock.now(),
        },
    )
    .await?;
    if !created {
        return Err(Error::conflict(
            "email_taken",
            "An account already uses this email address.",
        ));
    }
    Ok((
        StatusCode::CREATED,
        ApiJson(NewCrewResponse { crew_id: id }),
    ))
}
