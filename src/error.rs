//! The one error type: every refusal becomes an RFC 9457 problem document with a stable `code`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A refusal or failure, answered as `application/problem+json`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is malformed: bad JSON, wrong types, unknown fields, out-of-range values.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("unauthenticated")]
    Unauthenticated,
    #[error("forbidden")]
    Forbidden,
    /// Too many attempts; the client may try again after that many seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// A rule of the service refused the request, with the contract's status and code.
    #[error("{code}: {detail}")]
    Problem {
        status: StatusCode,
        code: &'static str,
        detail: String,
    },
    /// A form refused field by field (422), so a client can show each reason next to its
    /// field: the problem document lists them in `errors`.
    #[error("{code}: {detail}")]
    Fields {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    /// Anything unexpected: logged with its cause, answered with a plain 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn problem(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Error::Problem {
            status,
            code,
            detail: detail.into(),
        }
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::problem(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::problem(StatusCode::CONFLICT, code, detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::problem(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Error::InvalidRequest(detail.into())
    }

    /// The status, code and reader-facing sentence of this error.
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Error::InvalidRequest(detail) => {
                (StatusCode::BAD_REQUEST, "invalid_request", detail.clone())
            }
            Error::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Please sign in: this call needs a valid access token.".into(),
            ),
            Error::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Your account is not allowed to do this.".into(),
            ),
            Error::TooManyRequests { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!("Too many attempts. Please wait {retry_after_secs} seconds and try again."),
            ),
            Error::Problem {
                status,
                code,
                detail,
            } => (*status, code, detail.clone()),
            Error::Fields { code, detail, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, detail.clone())
            }
            Error::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Something went wrong on our side. Please try again in a moment.".into(),
            ),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::Internal(err.into())
    }
}

/// The body of a problem document (RFC 9457) with the contract's `code` member.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ProblemDocument {
    /// A URI naming the kind of problem, relative to the server.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// A sentence a rider can read.
    pub detail: String,
    /// The stable, machine-readable name of the problem.
    pub code: String,
    /// For refused forms: each wrong field and why, in the order of the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One refused field of a request, named as the request names it (`packs[1].price`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    #[schema(example = "packs[1].price")]
    pub field: String,
    /// A sentence an operator can read.
    pub detail: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(cause) = &self {
            tracing::error!(error = ?cause, "internal error");
        }
        let (status, code, detail) = self.parts();
        let errors = match &self {
            Error::Fields { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        let body = ProblemDocument {
            kind: format!("/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Error::TooManyRequests { retry_after_secs } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

/// A JSON body whose rejections (syntax, types, unknown fields, missing content type) are
/// answered as 400 `invalid_request` problem documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(Error::InvalidRequest(json_rejection_detail(&rejection))),
        }
    }
}

fn json_rejection_detail(rejection: &JsonRejection) -> String {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "The body must be JSON, sent with `Content-Type: application/json`.".into()
        }
        other => format!("The JSON body could not be read: {}", other.body_text()),
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query parameters whose rejections are answered as 400 `invalid_request`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(Error::InvalidRequest(query_rejection_detail(&rejection))),
        }
    }
}

fn query_rejection_detail(rejection: &QueryRejection) -> String {
    format!(
        "The query string could not be read: {}",
        rejection.body_text()
    )
}

/// Path parameters whose rejections are answered as 400 `invalid_request`.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(Error::InvalidRequest(format!(
                "The path could not be read: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// Answer for URLs no route matches.
pub async fn not_found() -> Error {
    Error::not_found("not_found", "There is nothing at this address.")
}
