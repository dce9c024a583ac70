//! Health, metrics, the OpenAPI document, restarts and internal errors, on every backend.

mod common;

use common::{backends, TestServer};
use scootfleet::config::Config;
use serde_json::json;

on_both_backends!(
    health_answers_while_the_database_does,
    metrics_count_requests_by_route_template,
    openapi_describes_every_route,
    internal_errors_leak_nothing,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_accounts_and_the_signing_key() {
    for backend in backends() {
        let first = TestServer::start(backend).await;
        let (_, rider) = first.signup("restart@example.com").await;
        let operator = first.operator_token().await;
        let database = first.stop_keeping_database().await;

        let mut config = Config::for_database(&database.url);
        config.operator_email = Some(common::OPERATOR_EMAIL.into());
        config.operator_password = Some(scootfleet::config::Secret::new("a different password"));
        let second = TestServer::start_on(backend, database, config).await;
        // Tokens signed before the restart still hold: the generated key lives in the database.
        second.get("/v1/me", Some(&rider)).await.expect(200);
        second
            .post(
                "/v1/ops/crews",
                Some(&operator),
                json!({"name": "Van", "email": "van@example.com", "password": "swap batteries fast"}),
            )
            .await
            .expect(201);
        // The bootstrap operator existed already: it is not replaced.
        second
            .login(common::OPERATOR_EMAIL, common::OPERATOR_PASSWORD)
            .await
            .expect(200);
        second.stop().await;
    }
}

mod scenarios {
    use serde_json::Value;

    use crate::common::*;

    pub async fn health_answers_while_the_database_does(s: &TestServer) {
        let health = s.get("/healthz", None).await;
        assert_eq!(health.expect(200)["database"], "ok");
    }

    pub async fn metrics_count_requests_by_route_template(s: &TestServer) {
        s.get("/healthz", None).await.expect(200);
        s.login("nobody@example.com", "whatever it is").await;
        s.get("/v1/no/such/path/42", None).await;
        let metrics = s.get("/metrics", None).await;
        assert_eq!(metrics.status, 200);
        assert!(metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let text = &metrics.text;
        assert!(text.contains("http_requests_total{"), "{text}");
        assert!(text.contains(r#"route="/v1/auth/login""#), "{text}");
        assert!(text.contains(r#"status="401""#), "{text}");
        assert!(
            text.contains("http_request_duration_seconds_bucket{"),
            "{text}"
        );
        assert!(
            !text.contains("/v1/no/such/path/42"),
            "raw paths must not become labels"
        );
        let resident: f64 = text
            .lines()
            .find_map(|line| line.strip_prefix("scootfleet_resident_bytes "))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("the resident memory as a gauge: {text}"));
        assert!(
            (1e6..1e11).contains(&resident),
            "a server's resident memory, in bytes: {resident}"
        );
    }

    pub async fn openapi_describes_every_route(s: &TestServer) {
        let doc = s.get("/openapi.json", None).await;
        let doc = doc.expect(200);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc["paths"].as_object().expect("paths");
        for (path, method) in [
            ("/v1/auth/signup", "post"),
            ("/v1/auth/login", "post"),
            ("/v1/me", "get"),
            ("/v1/ops/crews", "post"),
            ("/healthz", "get"),
            ("/metrics", "get"),
            ("/openapi.json", "get"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
        let problem = &doc["components"]["schemas"]["ProblemDocument"];
        assert!(problem.is_object(), "problem schema documented");
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        // Every documented operation answers something other than the 404 fallback.
        for (path, item) in paths {
            if path.contains('{') {
                continue;
            }
            for method in item.as_object().unwrap().keys() {
                let answer = s
                    .call(
                        method.to_uppercase().parse().unwrap(),
                        path,
                        None,
                        Some(Value::Null),
                    )
                    .await;
                assert_ne!(
                    answer.status, 404,
                    "{method} {path} documented but not routed"
                );
            }
        }
    }

    pub async fn internal_errors_leak_nothing(s: &TestServer) {
        // Break the database under the server's feet.
        match s.backend {
            scootfleet::db::Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&s.database.url).await.unwrap();
                sqlx::query("drop table accounts")
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            scootfleet::db::Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&s.database.url).await.unwrap();
                sqlx::query("drop table accounts cascade")
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
        let answer = s.login("a@example.com", "whatever it is").await;
        answer.expect_problem(500, "internal_error");
        let text = answer.text.to_lowercase();
        for secret in [
            "accounts", "sqlite", "postgres", "relation", "table", "select",
        ] {
            assert!(!text.contains(secret), "500 leaks `{secret}`: {text}");
        }
    }
}

/// A request already being received when shutdown starts is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let database = common::TestDatabase::create(scootfleet::db::Backend::Sqlite).await;
    let config = Config::for_database(&database.url);
    let clock = std::sync::Arc::new(scootfleet::clock::ManualClock::new(common::default_now()));
    let state = scootfleet::app::build_state(config, clock).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(scootfleet::app::serve(listener, state, async {
        let _ = stopped.await;
    }));

    let body = r#"{"email": "late@example.com", "password": "correct horse battery"}"#;
    let (first, rest) = body.split_at(10);
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/auth/signup HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    stop.send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");

    server.await.unwrap().unwrap();
    // Once stopped, nothing listens any more.
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}
