//! Who is calling: access tokens, password hashing, and one typed extractor per role.
//!
//! Tokens are HS256 JWTs (algorithm pinned) with one audience per role. Expiry is checked
//! against the server's [`Clock`](crate::clock::Clock), so tests can move time.

use std::fmt;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::error::Error;

/// The kinds of people who sign in. Scooters authenticate with device tokens instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Rider,
    Crew,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Rider => "rider",
            Role::Crew => "crew",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rider" => Some(Role::Rider),
            "crew" => Some(Role::Crew),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }

    /// The JWT audience of this role's tokens: a token for one role is useless for another.
    fn audience(self) -> &'static str {
        match self {
            Role::Rider => "scootfleet:rider",
            Role::Crew => "scootfleet:crew",
            Role::Operator => "scootfleet:operator",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

/// Signing keys and token lifetime. `Debug` never shows the key.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: u64,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("key", &"***")
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

/// A freshly issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

/// Leeway for clocks that disagree by a little, in seconds.
const LEEWAY_SECS: i64 = 30;

impl TokenKeys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs,
        }
    }

    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, Error> {
        let iat = now.timestamp();
        let claims = Claims {
            sub: subject.to_owned(),
            aud: role.audience().to_owned(),
            iat,
            nbf: iat,
            exp: iat + self.ttl_secs as i64,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(e.into()))?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl_secs,
        })
    }

    /// The subject of a valid token for `role`: 401 for a bad or expired token, 403 for a
    /// valid token of another role.
    fn verify(&self, token: &str, role: Role, now: DateTime<Utc>) -> Result<String, Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Time and audience are checked below, against the server's clock and the role.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| Error::Unauthenticated)?
            .claims;
        let now = now.timestamp();
        if now > claims.exp + LEEWAY_SECS || now + LEEWAY_SECS < claims.nbf {
            return Err(Error::Unauthenticated);
        }
        if claims.aud != role.audience() {
            let known = [Role::Rider, Role::Crew, Role::Operator]
                .iter()
                .any(|r| r.audience() == claims.aud);
            return Err(if known {
                Error::Forbidden
            } else {
                Error::Unauthenticated
            });
        }
        Ok(claims.sub)
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn authenticate(parts: &Parts, state: &AppState, role: Role) -> Result<String, Error> {
    let token = bearer_token(parts).ok_or(Error::Unauthenticated)?;
    state.tokens.verify(token, role, state.clock.now())
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            pub id: String,
        }

        impl FromRequestParts<AppState> for $name {
            type Rejection = Error;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
                authenticate(parts, state, $role).map(|id| $name { id })
            }
        }
    };
}

role_extractor!(
    /// A signed-in rider (the account id).
    Rider,
    Role::Rider
);
role_extractor!(
    /// A signed-in crew member (the account id).
    CrewMember,
    Role::Crew
);
role_extractor!(
    /// A signed-in operator (the account id).
    Operator,
    Role::Operator
);

/// Hashes a password with argon2id, off the async runtime.
pub async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await
    .map_err(|e| Error::Internal(e.into()))?
    .map_err(Error::Internal)
}

/// Checks a password against a stored hash, off the async runtime. With no stored hash
/// (unknown account) it still spends the same work, so timing does not tell the difference.
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, Error> {
    tokio::task::spawn_blocking(move || {
        let stored_ok = stored.is_some();
        let hash = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok::<_, anyhow::Error>(stored_ok && matches)
    })
    .await
    .map_err(|e| Error::Internal(e.into()))?
    .map_err(Error::Internal)
}

/// An argon2id hash of a random string nobody knows, checked when an email is unknown.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2Nvb3RmbGVldGR1bW15$2VqVfMBSsnPqQ6KXmIVFqgh3TFm/xy5eVvUQUsqhx6k";

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn tokens_are_bound_to_their_role_and_lifetime() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", 3600);
        let now = at("2026-11-23T07:00:00Z");
        let issued = keys.issue("acct_1", Role::Rider, now).unwrap();
        assert_eq!(
            keys.verify(&issued.token, Role::Rider, now).unwrap(),
            "acct_1"
        );
        assert!(matches!(
            keys.verify(&issued.token, Role::Operator, now),
            Err(Error::Forbidden)
        ));
        let later = now + chrono::Duration::seconds(3600 + LEEWAY_SECS + 1);
        assert!(matches!(
            keys.verify(&issued.token, Role::Rider, later),
            Err(Error::Unauthenticated)
        ));
        let other = TokenKeys::new(b"another key of thirty-two bytes!", 3600);
        assert!(matches!(
            other.verify(&issued.token, Role::Rider, now),
            Err(Error::Unauthenticated)
        ));
    }

    #[test]
    fn tokens_signed_with_another_algorithm_are_refused() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", 3600);
        let now = at("2026-11-23T07:00:00Z");
        let claims = Claims {
            sub: "acct_1".into(),
            aud: Role::Rider.audience().into(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: now.timestamp() + 60,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(keys.verify(&token, Role::Rider, now).is_err());
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!verify_password("wrong".into(), Some(hash)).await.unwrap());
        assert!(!verify_password("anything".into(), None).await.unwrap());
    }
}
