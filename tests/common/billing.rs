//! Helpers for billing scenarios: calls with an `Idempotency-Key`, wallets, top-ups, and a
//! direct handle on the test database for the ledger checks.

use reqwest::Method;
use scootfleet::billing::Tariff;
use scootfleet::config::Config;
use scootfleet::db::Db;
use serde_json::{json, Value};

use super::{Answer, TestServer};

impl TestServer {
    /// A POST carrying `Idempotency-Key: key`.
    pub async fn post_with_key(&self, path: &str, token: &str, key: &str, body: Value) -> Answer {
        let request = self
            .http
            .request(Method::POST, self.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&body);
        Self::answer(request.send().await.expect("request sent")).await
    }

    /// The rider's wallet, as `GET /v1/me/wallet` answers it.
    pub async fn wallet(&self, token: &str) -> Value {
        self.get("/v1/me/wallet", Some(token))
            .await
            .expect(200)
            .clone()
    }

    /// Tops the rider's wallet up with the test provider's accepting token.
    pub async fn top_up(&self, token: &str, amount: &str) -> Value {
        self.post(
            "/v1/me/wallet/top-ups",
            Some(token),
            json!({"amount": amount, "payment_token": "tok_test_ok"}),
        )
        .await
        .expect(201)
        .clone()
    }

    /// A second connection pool on the server's database, as another domain would use it.
    pub async fn open_db(&self) -> Db {
        Db::connect(&self.database.url, 2)
            .await
            .expect("open test database")
    }

    /// The tariff the server runs with (the defaults).
    pub fn default_tariff(&self) -> Tariff {
        Tariff::from_config(&Config::for_database(&self.database.url)).expect("default tariff")
    }
}
