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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_draws_the_fleet_and_follows_it_live() {
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
        return;
    }

    let dist = root.join("console/dist");
    let s = TestServer::start_with(Backend::Sqlite, move |c| c.console_dir = dist).await;
    // The script dates its telemetry by the real clock; the server must agree, or the point
    // would be older than the registration and not move the scooter.
    s.clock.set(chrono::Utc::now());
    let operator = s.operator_token().await;
    // Real time may fall outside the default hours, when the fleet would be put to sleep.
    s.put(
        "/v1/ops/hours",
        Some(&operator),
        json!({"timezone": "Europe/Paris", "open": "00:00", "close": "24:00"}),
    )
    .await
    .expect(200);
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
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("node ran")
        .expect("node started");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    eprintln!(
        "browser test passed; screenshot at {}",
        screenshot.display()
    );
    s.stop().await;
}
