//! `Idempotency-Key`: a mutating call sent again with the same key gets the first answer
//! again, and its work is done once.
//!
//! The key is claimed first — a row `(account, key)` inserted with the request's fingerprint
//! and no answer yet — so concurrent duplicates cannot both run: the later one waits for the
//! first answer and replays it (with `Idempotent-Replayed: true`). The same key with another
//! body (or another call) is refused with 422 `idempotency_key_reused`. Answers below 500 are
//! kept (a 402 replays as a 402); after a 5xx the claim is released so the client may retry.
//!
//! Any handler can wrap its work:
//!
//! ```ignore
//! pub async fn end_ride(State(state): State<AppState>, rider: Rider, key: IdempotencyKey,
//!                       ApiPath(id): ApiPath<String>, ApiJson(body): ApiJson<EndRequest>)
//!     -> Response {
//!     let fingerprint = idempotency::fingerprint("POST", &format!("/v1/rides/{id}/end"), &body);
//!     idempotency::once(&state, &rider.id, &key, fingerprint, || async {
//!         // … the work, returning Result<impl IntoResponse, Error> …
//!     }).await
//! }
//! ```
//!
//! The work itself should still be safe to run twice (the ledger charges a reference once):
//! a server that dies between doing the work and storing the answer leaves a claim that
//! [`STALE_CLAIM`] later lets a retry take over.
//!
//! [`STALE_CLAIM`]: crate::idempotency::STALE_CLAIM

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::db::Db;
use crate::db_run;
use crate::db_write;
use crate::error::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The header clients send.
pub const HEADER: &str = "idempotency-key";
/// The header on answers that are replays.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long answers are kept, at least.
pub const RETENTION: chrono::Duration = chrono::Duration::hours(24);
/// How often answers past [`RETENTION`] are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// A claim without an answer after this long belongs to a server that stopped: a retry may
/// take it over.
pub const STALE_CLAIM: chrono::Duration = chrono::Duration::minutes(2);
/// How long a duplicate waits for the first request's answer before 409.
const WAIT_FOR_ANSWER: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(20);
const MAX_KEY_LEN: usize = 255;
const MAX_STORED_BODY: usize = 1 << 20;

/// The `Idempotency-Key` of a request, if it has one: printable ASCII, 1 to 255 characters,
/// else 400 `invalid_request`.
#[derive(Clone, Debug, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
            .filter(|k| k.bytes().all(|b| (0x21..=0x7e).contains(&b)))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Idempotency-Key must be 1 to {MAX_KEY_LEN} printable characters without spaces."
                ))
            })?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

/// What makes two requests "the same": method, path and body (as parsed, so formatting and
/// key order do not matter).
pub fn fingerprint(method: &str, path: &str, body: &impl Serialize) -> String {
    let body =
        serde_json::to_string(&serde_json::to_value(body).unwrap_or_default()).unwrap_or_default();
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update(b"\n");
    hash.update(path.as_bytes());
    hash.update(b"\n");
    hash.update(body.as_bytes());
    hex(&hash.finalize())
}

/// A stable name for the work done under `key` by `account_id`, for references that must be
/// the same when the work is retried (a payment reference, a purchase id).
pub fn derived_id(prefix: &str, account_id: &str, key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(account_id.as_bytes());
    hash.update(b"\n");
    hash.update(key.as_bytes());
    format!("{prefix}_{}", &hex(&hash.finalize())[..24])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(sqlx::FromRow)]
struct Stored {
    fingerprint: String,
    status_code: Option<i64>,
    content_type: Option<String>,
    body: Option<String>,
    created_at_ms: i64,
}

/// Runs `work` once per `(account_id, key)`; without a key, simply runs it.
pub async fn once<T, Fut>(
    state: &AppState,
    account_id: &str,
    key: &IdempotencyKey,
    fingerprint: String,
    work: impl FnOnce() -> Fut,
) -> Response
where
    T: IntoResponse,
    Fut: Future<Output = Result<T, Error>>,
{
    let Some(key) = key.0.as_deref() else {
        return work().await.into_response();
    };
    match claim(state, account_id, key, &fingerprint).await {
        Ok(Claim::Won) => {}
        Ok(Claim::Answered(response)) => return response,
        Err(err) => return err.into_response(),
    }
    let response = work().await.into_response();
    keep(&state.db, account_id, key, response).await
}

enum Claim {
    Won,
    Answered(Response),
}

/// Claims the key, or waits for the answer of whoever holds it.
async fn claim(
    state: &AppState,
    account_id: &str,
    key: &str,
    fingerprint: &str,
) -> Result<Claim, Error> {
    let db = &state.db;
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    let deadline = tokio::time::Instant::now() + WAIT_FOR_ANSWER;
    loop {
        let inserted = db_write!(db, |pool| sqlx::query(
            "insert into idempotency_keys (account_id, key, fingerprint, created_at_ms) \
             values ($1, $2, $3, $4) on conflict (account_id, key) do nothing"
        )
        .bind(account_id)
        .bind(key)
        .bind(fingerprint)
        .bind(now_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        if inserted == 1 {
            return Ok(Claim::Won);
        }
        let stored: Option<Stored> = db_run!(db, |pool| sqlx::query_as(
            "select fingerprint, status_code, content_type, body, created_at_ms \
             from idempotency_keys where account_id = $1 and key = $2"
        )
        .bind(account_id)
        .bind(key)
        .fetch_optional(pool)
        .await)?;
        // Released by a request that failed: try to claim it again.
        let Some(stored) = stored else { continue };
        if stored.fingerprint != fingerprint {
            return Err(Error::unprocessable(
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different request. Use a new key for a new request.",
            ));
        }
        if let (Some(status), Some(body)) = (stored.status_code, stored.body) {
            return Ok(Claim::Answered(replay(status, stored.content_type, body)));
        }
        if stored.created_at_ms < (now - STALE_CLAIM).timestamp_millis() {
            let taken = db_write!(db, |pool| sqlx::query(
                "update idempotency_keys set created_at_ms = $1 \
                 where account_id = $2 and key = $3 and created_at_ms = $4 and status_code is null"
            )
            .bind(now_ms)
            .bind(account_id)
            .bind(key)
            .bind(stored.created_at_ms)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
            if taken == 1 {
                return Ok(Claim::Won);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::conflict(
                "idempotency_key_in_progress",
                "A request with this Idempotency-Key is still being processed. Please try again in a moment.",
            ));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Stores the answer under the key (or releases the key after a server error) and returns it.
/// The work is done by now, so its answer goes back to the client even if it cannot be kept:
/// a retry then takes the claim over once stale, and the work's own references keep it from
/// counting twice.
async fn keep(db: &Db, account_id: &str, key: &str, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_STORED_BODY).await {
        Ok(bytes) => bytes,
        Err(err) => {
            return Error::Internal(anyhow::anyhow!("reading an answer to keep it: {err}"))
                .into_response()
        }
    };
    let stored = if parts.status.is_server_error() {
        db_write!(db, |pool| sqlx::query(
            "delete from idempotency_keys where account_id = $1 and key = $2"
        )
        .bind(account_id)
        .bind(key)
        .execute(pool)
        .await
        .map(|_| ()))
    } else {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        db_write!(db, |pool| sqlx::query(
            "update idempotency_keys set status_code = $1, content_type = $2, body = $3 \
             where account_id = $4 and key = $5"
        )
        .bind(i64::from(parts.status.as_u16()))
        .bind(content_type)
        .bind(text)
        .bind(account_id)
        .bind(key)
        .execute(pool)
        .await
        .map(|_| ()))
    };
    if let Err(err) = stored {
        tracing::error!(error = %err, "could not keep the answer of an idempotent request");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Deletes the answers kept longer than [`RETENTION`]; returns how many.
pub async fn purge(db: &Db, now: chrono::DateTime<chrono::Utc>) -> Result<u64, Error> {
    let before = (now - RETENTION).timestamp_millis();
    Ok(db_write!(db, |pool| sqlx::query(
        "delete from idempotency_keys where created_at_ms < $1"
    )
    .bind(before)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?)
}

/// The background worker that purges old answers every hour until shutdown.
pub fn spawn_purger(state: AppState, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => match purge(&state.db, state.clock.now()).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "old idempotency keys purged"),
                    Err(err) => tracing::warn!(error = %err, "could not purge idempotency keys"),
                },
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
    })
}

fn replay(status: i64, content_type: Option<String>, body: String) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if let Some(value) = content_type.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprints_ignore_formatting_but_not_content() {
        let a = fingerprint("POST", "/x", &json!({"a": 1, "b": "2"}));
        let b = fingerprint("POST", "/x", &json!({"b": "2", "a": 1}));
        assert_eq!(a, b);
        assert_ne!(a, fingerprint("POST", "/x", &json!({"a": 1, "b": "3"})));
        assert_ne!(a, fingerprint("POST", "/y", &json!({"a": 1, "b": "2"})));
    }

    #[test]
    fn derived_ids_are_stable_per_account_and_key() {
        assert_eq!(derived_id("t", "r1", "k"), derived_id("t", "r1", "k"));
        assert_ne!(derived_id("t", "r1", "k"), derived_id("t", "r2", "k"));
        assert!(derived_id("topup", "r1", "k").starts_with("topup_"));
    }
}
