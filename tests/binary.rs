//! The `scootfleet` binary as a new user runs it: no configuration, then a SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

fn scootfleet(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scootfleet"));
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("SCOOTFLEET_JWT_SECRET")
        .env_remove("SCOOTFLEET_OPERATOR_EMAIL")
        .env_remove("SCOOTFLEET_OPERATOR_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

async fn wait_until_healthy(base: &str, child: &mut Child) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited early: {status}");
        }
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become healthy");
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn runs_with_no_configuration_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let password = "bootstrap-Pa55word-never-logged";
    let mut child = scootfleet(dir.path())
        .env("SCOOTFLEET_BIND", &address)
        .env("SCOOTFLEET_OPERATOR_EMAIL", "boss@example.com")
        .env("SCOOTFLEET_OPERATOR_PASSWORD", password)
        .env("RUST_LOG", "debug")
        .spawn()
        .expect("start scootfleet");
    let base = format!("http://{address}");
    wait_until_healthy(&base, &mut child).await;

    assert!(
        dir.path().join("scootfleet.db").exists(),
        "SQLite file created in the working directory"
    );
    let login = reqwest::Client::new()
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": "boss@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);

    terminate(&child);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "exit {:?}: {logs}", output.status);
    assert!(logs.contains("scootfleet stopped"), "{logs}");
    assert!(
        !logs.contains(password),
        "the password reached the logs: {logs}"
    );
    let secret: String = {
        let pool = sqlx::SqlitePool::connect(&format!(
            "sqlite://{}",
            dir.path().join("scootfleet.db").display()
        ))
        .await
        .unwrap();
        let secret = sqlx::query_scalar("select value from settings where key = 'jwt_secret'")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        secret
    };
    assert!(secret.len() >= 64, "a strong generated signing key is kept");
    assert!(!logs.contains(&secret), "the signing key reached the logs");
}

#[test]
fn refuses_unknown_database_schemes() {
    let dir = tempfile::tempdir().unwrap();
    let output = scootfleet(dir.path())
        .env("DATABASE_URL", "mysql://root@localhost/fleet")
        .env("SCOOTFLEET_BIND", free_address())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unsupported database URL scheme `mysql`"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no file was created"
    );
}

#[test]
fn help_lists_every_setting() {
    let output = scootfleet(Path::new(".")).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for name in [
        "--database-url",
        "DATABASE_URL",
        "--bind",
        "SCOOTFLEET_BIND",
        "SCOOTFLEET_JWT_SECRET",
        "SCOOTFLEET_JWT_TTL_SECS",
        "SCOOTFLEET_OPERATOR_EMAIL",
        "SCOOTFLEET_OPERATOR_PASSWORD",
    ] {
        assert!(
            help.contains(name),
            "--help does not mention {name}:\n{help}"
        );
    }
}
