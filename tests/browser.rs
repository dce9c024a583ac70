//! The operator console in a real browser: `tests/browser/console.mjs` (node:test and
//! playwright-core driving headless Chromium) signs in, sees the seeded fleet drawn, sends a
//! telemetry point and sees the marker move, clicks a scooter on a ride and sees the ride,
//! edits the tariff through its form (a refused field first). Runs when the console is built and the browser
//! and test packages are installed; otherwise says what is missing and how to get it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fleet::{register, PARIS};
use common::{TestServer, OPERATOR_EMAIL, OPERATOR_PASSWORD};
use scootfleet::db::Backend;
use serde_json::json;

/// What is missing to run the browser test, with how to get each.
fn missing(root: &Path, chromium: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !root.join("console/dist/index.html").is_file() {
        missing.push(
            "the built console (console/dist): cd console && npm install && npm run build".into(),
        );
    }
    if !root
        .join("tests/browser/node_modules/playwright-core")
        .is_dir()
    {
        missing.push("playwright-core: cd tests/browser && npm ci".into());
    }
    if !chromium.is_file() {
        missing.push(format!(
            "Chromium at {}: apt-get install -y chromium (or set CHROMIUM_PATH)",
            chromium.display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("Node.js: apt-get install -y nodejs npm".into());
    }
    missing
}

/// The repository root and the Chromium to use, or `None` (having said what is missing).
fn ready() -> Option<(PathBuf, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let chromium = PathBuf::from(
        std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    let missing = missing(&root, &chromium);
    if !missing.is_empty() {
        eprintln!("skipped: the browser test needs");
        for what in &missing {
            eprintln!("  - {what}");
        }
        return None;
    }
    Some((root, chromium))
}

/// Runs `command` (a node script) to the end; fails with its output if it failed.
async fn run_node(mut command: Command) -> String {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("node ran")
        .expect("node started");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser script failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// The server opens all day: the scripts run on the real clock, which may be outside the
/// default hours, when the fleet would be put to sleep.
async fn open_all_day(s: &TestServer, operator: &str) {
    s.put(
        "/v1/ops/hours",
        Some(operator),
        json!({"timezone": "Europe/Paris", "open": "00:00", "close": "24:00"}),
    )
    .await
    .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_draws_the_fleet_and_follows_it_live() {
    let Some((root, chromium)) = ready() else {
        return;
    };

    let dist = root.join("console/dist");
    let s = TestServer::start_with(Backend::Sqlite, move |c| c.console_dir = dist).await;
    // The script dates its telemetry by the real clock; the server must agree, or the point
    // would be older than the registration and not move the scooter.
    s.clock.set(chrono::Utc::now());
    let operator = s.operator_token().await;
    open_all_day(&s, &operator).await;
    let mut devices = Vec::new();
    for i in 0..20 {
        let id = format!("CS-{i:04}");
        // A 5 × 4 grid around the Hôtel de Ville, about 150 m apart.
        let lat = PARIS.0 + f64::from(i / 5) * 0.0015 - 0.003;
        let lon = PARIS.1 + f64::from(i % 5) * 0.002 - 0.004;
        let range_km = [3.0, 8.0, 30.0, 45.0][i as usize % 4];
        let token = register(&s, &operator, &id, lat, lon, range_km).await;
        devices.push(json!({"scooter_id": id, "device_token": token, "lat": lat, "lon": lon}));
    }
    // A rider on CS-0002, for the click panel to show the ride.
    let (_, rider) = s.signup("browser-rider@example.com").await;
    let ride = common::rides::start_ride(&s, &rider, "CS-0002").await;
    let on_ride = &devices[2];
    let scooter = common::rides::Scooter {
        id: "CS-0002".into(),
        device: on_ride["device_token"].as_str().expect("token").to_owned(),
    };
    common::rides::ack_unlock(&s, &scooter).await;
    let riding = json!({"scooter_id": "CS-0002", "ride_id": ride, "lat": on_ride["lat"], "lon": on_ride["lon"]});
    let screenshot = std::env::var("SCOOTFLEET_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/console-e2e.png"));

    let mut command = Command::new("node");
    command
        .current_dir(root.join("tests/browser"))
        .args(["--test", "console.mjs"])
        .env("SCOOTFLEET_URL", &s.base)
        .env("SCOOTFLEET_OPERATOR_EMAIL", OPERATOR_EMAIL)
        .env("SCOOTFLEET_OPERATOR_PASSWORD", OPERATOR_PASSWORD)
        .env("SCOOTFLEET_DEVICES", json!(devices).to_string())
        .env("SCOOTFLEET_RIDE", riding.to_string())
        .env("SCOOTFLEET_SCREENSHOT", &screenshot)
        .env("CHROMIUM_PATH", &chromium);
    run_node(command).await;
    eprintln!(
        "browser test passed; screenshot at {}",
        screenshot.display()
    );
    s.stop().await;
}

/// How long a live move takes to show with a large fleet (100,000 scooters unless
/// `SCOOTFLEET_FLEET_SIZE` says otherwise). A measurement, not a check:
/// `cargo test --release --test browser -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn a_live_move_shows_quickly_with_a_large_fleet() {
    let Some((root, chromium)) = ready() else {
        return;
    };
    let size: usize = std::env::var("SCOOTFLEET_FLEET_SIZE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    // A grid over Paris, registered before the server starts, as an import would.
    let columns = 400;
    let rows: Vec<scootfleet::fleet::import::Row> = (0..size)
        .map(|i| scootfleet::fleet::import::Row {
            scooter_id: format!("CS-{i:06}"),
            lat: 48.83 + (i / columns) as f64 * (0.06 / (size / columns).max(1) as f64),
            lon: 2.26 + (i % columns) as f64 * (0.15 / columns as f64),
            range_km: [3.0, 8.0, 30.0, 45.0][i % 4],
            battery_pct: 60.0,
        })
        .collect();
    let database = common::TestDatabase::create(Backend::Sqlite).await;
    let db = scootfleet::db::Db::connect(&database.url, 2)
        .await
        .expect("database");
    db.migrate().await.expect("migrations");
    let mut tokens = Vec::new();
    let seeded_at = chrono::Utc::now() - chrono::Duration::minutes(1);
    scootfleet::fleet::import::register_all(&db, &rows, seeded_at, &mut tokens, |_| {})
        .await
        .expect("fleet seeded");
    db.close().await;
    let movers: Vec<serde_json::Value> = String::from_utf8(tokens)
        .expect("tokens")
        .lines()
        .skip(1)
        .step_by(size / 5)
        .take(5)
        .map(|line| {
            let (id, token) = line.split_once(',').expect("scooter_id,device_token");
            let row = rows.iter().find(|r| r.scooter_id == id).expect("row");
            json!({"scooter_id": id, "device_token": token, "lat": row.lat, "lon": row.lon})
        })
        .collect();

    let mut config = scootfleet::config::Config::for_database(&database.url);
    config.operator_email = Some(OPERATOR_EMAIL.into());
    config.operator_password = Some(scootfleet::config::Secret::new(OPERATOR_PASSWORD));
    // Another build of the console may be compared with SCOOTFLEET_CONSOLE_DIR.
    config.console_dir = std::env::var_os("SCOOTFLEET_CONSOLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("console/dist"));
    let s = TestServer::start_on(Backend::Sqlite, database, config).await;
    s.clock.set(chrono::Utc::now());
    let operator = s.operator_token().await;
    open_all_day(&s, &operator).await;

    let mut command = Command::new("node");
    command
        .current_dir(root.join("tests/browser"))
        .arg("measure.mjs")
        .env("SCOOTFLEET_URL", &s.base)
        .env("SCOOTFLEET_OPERATOR_EMAIL", OPERATOR_EMAIL)
        .env("SCOOTFLEET_OPERATOR_PASSWORD", OPERATOR_PASSWORD)
        .env("SCOOTFLEET_DEVICES", json!(movers).to_string())
        .env("SCOOTFLEET_FLEET_SIZE", size.to_string())
        .env("SCOOTFLEET_MOVES", "10")
        .env("CHROMIUM_PATH", &chromium);
    let report = run_node(command).await;
    println!("{}", report.trim());
    s.stop().await;
}
