//! The integration-test harness: a real server on port 0 with its own database.
//!
//! Every scenario runs on SQLite, and also on PostgreSQL when `SCOOTFLEET_TEST_POSTGRES`
//! names an administrative database URL (e.g. `postgres://postgres@127.0.0.1:5432/test`):
//! each run then gets a fresh database, dropped afterwards.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use scootfleet::clock::ManualClock;
use scootfleet::config::{Config, Secret};
use scootfleet::db::Backend;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Runs `scenario` once per enabled backend, naming the test after the scenario.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                for backend in $crate::common::backends() {
                    eprintln!("{} on {:?}", stringify!($name), backend);
                    let server = $crate::common::TestServer::start(backend).await;
                    $crate::scenarios::$name(&server).await;
                    server.stop().await;
                }
            }
        )+
    };
}

/// The backends this run covers: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    if postgres_admin_url().is_some() {
        backends.push(Backend::Postgres);
    }
    backends
}

pub fn postgres_admin_url() -> Option<String> {
    std::env::var("SCOOTFLEET_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The instant tests start at unless they move the clock: a Monday, 11:00 in Paris.
pub fn default_now() -> DateTime<Utc> {
    at("2026-11-23T10:00:00Z")
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

pub const OPERATOR_EMAIL: &str = "ops@scootfleet.test";
pub const OPERATOR_PASSWORD: &str = "operator-secret-42";

/// A database made for one test, removed when the test stops.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres_name: Option<String>,
}

impl TestDatabase {
    /// The database of another test server, for a second server on it: not removed when
    /// this one stops.
    pub fn shared(url: &str) -> Self {
        TestDatabase {
            url: url.to_owned(),
            _dir: None,
            postgres_name: None,
        }
    }

    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                TestDatabase {
                    url,
                    _dir: Some(dir),
                    postgres_name: None,
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url().expect("SCOOTFLEET_TEST_POSTGRES");
                let name = format!("sf_{}", scootfleet::ids::new_secret(16).to_lowercase());
                let pool = sqlx::PgPool::connect(&admin)
                    .await
                    .expect("connect to PostgreSQL");
                sqlx::query(&format!("create database {name}"))
                    .execute(&pool)
                    .await
                    .expect("create test database");
                pool.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                TestDatabase {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    postgres_name: Some(name),
                }
            }
        }
    }

    pub async fn drop_database(&mut self) {
        if let Some(name) = self.postgres_name.take() {
            drop_postgres_database(&name).await;
        }
    }
}

/// A PostgreSQL database still here when its test ends without stopping its server (a
/// failed assertion) is dropped now, so that failed runs do not leave databases behind. The
/// test's own runtime may be unwinding: the drop runs on a thread and runtime of its own.
impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(drop_postgres_database(&name));
            }
        });
        let _ = dropped.join();
    }
}

/// Drops the test database `name` (and ends its connections), if it can.
async fn drop_postgres_database(name: &str) {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
        let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}

/// A running server and a client for it.
pub struct TestServer {
    pub base: String,
    pub backend: Backend,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    pub database: TestDatabase,
    /// The running server's state, for calling domain entry points directly.
    pub state: scootfleet::app::AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// An HTTP answer: status, headers and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The problem document's `code`, checking the content type on the way.
    pub fn code(&self) -> &str {
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "not a problem document: {self:?}"
        );
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {} {}",
            self.status,
            self.text
        );
        &self.body
    }

    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {}",
            self.text
        );
        assert_eq!(self.code(), code, "unexpected problem: {}", self.text);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "no detail: {}",
            self.text
        );
        assert_eq!(self.body["status"].as_u64(), Some(status as u64));
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let database = TestDatabase::create(backend).await;
        let mut config = Config::for_database(&database.url);
        config.db_max_connections = 8;
        config.operator_email = Some(OPERATOR_EMAIL.into());
        config.operator_password = Some(Secret::new(OPERATOR_PASSWORD));
        adjust(&mut config);
        Self::start_on(backend, database, config).await
    }

    /// Starts a server on an existing database (e.g. to restart one).
    pub async fn start_on(backend: Backend, database: TestDatabase, config: Config) -> Self {
        let clock = Arc::new(ManualClock::new(default_now()));
        let state = scootfleet::app::build_state(config, clock.clone())
            .await
            .expect("build state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(scootfleet::app::serve(listener, state.clone(), async {
            let _ = rx.await;
        }));
        TestServer {
            base,
            backend,
            clock,
            http: reqwest::Client::new(),
            database,
            state,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and removes its database.
    pub async fn stop(mut self) {
        self.stop_server().await;
        self.database.drop_database().await;
    }

    /// Stops the server gracefully and hands back its database, for a restart.
    pub async fn stop_keeping_database(mut self) -> TestDatabase {
        self.stop_server().await;
        std::mem::replace(
            &mut self.database,
            TestDatabase {
                url: String::new(),
                _dir: None,
                postgres_name: None,
            },
        )
    }

    async fn stop_server(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request.send().await.expect("request sent")).await
    }

    pub async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    /// Signs up a rider and returns (rider_id, token).
    pub async fn signup(&self, email: &str) -> (String, String) {
        let answer = self
            .post(
                "/v1/auth/signup",
                None,
                serde_json::json!({"email": email, "password": "correct horse battery"}),
            )
            .await;
        let body = answer.expect(201);
        (
            body["rider_id"].as_str().expect("rider_id").to_owned(),
            body["access_token"].as_str().expect("token").to_owned(),
        )
    }

    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/v1/auth/login",
            None,
            serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    /// A counter of the server's `/metrics` (`name` without labels), 0 until it first counts.
    /// The recorder is the test process's own: counts include other servers of the process.
    pub async fn counter(&self, name: &str) -> u64 {
        let metrics = self.get("/metrics", None).await;
        metrics
            .text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .map_or(0, |n| n.trim().parse().expect("a count"))
    }

    /// The bootstrap operator's token.
    pub async fn operator_token(&self) -> String {
        let answer = self.login(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
        answer.expect(200)["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }
}

/// Helpers for wallet, packs, top-ups and idempotency keys.
pub mod billing;
pub mod dispatch;
pub mod fleet;
/// GBFS helpers: validating documents against the official v3.0 schemas.
pub mod gbfs;
pub mod rides;
