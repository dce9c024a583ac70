//! Accounts in the database.

use chrono::{DateTime, Utc};

use crate::auth::{hash_password, Role};
use crate::db::{is_unique_violation, Db};
use crate::db_run;
use crate::db_write;
use crate::error::Error;

/// A new account, password already hashed.
#[derive(Debug)]
pub struct NewAccount<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub display_name: Option<&'a str>,
    pub marketing_opt_in: bool,
    pub created_at: DateTime<Utc>,
}

/// What a login needs to know of an account.
#[derive(Debug, sqlx::FromRow)]
pub struct Credentials {
    pub id: String,
    pub password_hash: String,
    pub role: String,
}

/// Inserts an account; `Ok(false)` when the email is already taken.
pub async fn insert_account(db: &Db, account: &NewAccount<'_>) -> Result<bool, Error> {
    let result = db_write!(db, |pool| {
        sqlx::query(
            "insert into accounts (id, email, password_hash, role, display_name, marketing_opt_in, created_at_ms) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(account.id)
        .bind(account.email)
        .bind(account.password_hash)
        .bind(account.role.as_str())
        .bind(account.display_name)
        .bind(account.marketing_opt_in)
        .bind(account.created_at.timestamp_millis())
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
    });
    match result {
        Ok(_) => Ok(true),
        Err(err) if is_unique_violation(&err) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// An account as its owner sees it.
#[derive(Debug, sqlx::FromRow)]
pub struct AccountProfile {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub marketing_opt_in: bool,
    pub created_at_ms: i64,
}

pub async fn profile(db: &Db, id: &str) -> Result<Option<AccountProfile>, Error> {
    Ok(db_run!(db, |pool| {
        sqlx::query_as(
            "select id, email, display_name, marketing_opt_in, created_at_ms from accounts where id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    })?)
}

pub async fn credentials(db: &Db, email: &str) -> Result<Option<Credentials>, Error> {
    Ok(db_run!(db, |pool| {
        sqlx::query_as("select id, password_hash, role from accounts where email = $1")
            .bind(email)
            .fetch_optional(pool)
            .await
    })?)
}

/// Creates the bootstrap operator unless an account with that email exists.
/// Returns whether it was created.
pub async fn ensure_operator(
    db: &Db,
    email: &str,
    password: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let email = super::normalize_email(email);
    if !super::is_valid_email(&email) {
        anyhow::bail!("SCOOTFLEET_OPERATOR_EMAIL is not a valid email address");
    }
    if credentials(db, &email).await.map_err(to_anyhow)?.is_some() {
        return Ok(false);
    }
    let hash = hash_password(password.to_owned())
        .await
        .map_err(to_anyhow)?;
    let id = crate::ids::new_id("op");
    insert_account(
        db,
        &NewAccount {
            id: &id,
            email: &email,
            password_hash: &hash,
            role: Role::Operator,
            display_name: None,
            marketing_opt_in: false,
            created_at: now,
        },
    )
    .await
    .map_err(to_anyhow)
}

fn to_anyhow(err: Error) -> anyhow::Error {
    match err {
        Error::Internal(cause) => cause,
        other => anyhow::anyhow!(other.to_string()),
    }
}
