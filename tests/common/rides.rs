//! Ride helpers: a server whose ride workers tick fast, riders with money, scooters at a
//! place, unlocking, ending, and moving a scooter with its own telemetry.

use chrono::Duration;
use scootfleet::clock::Clock;
use serde_json::{json, Value};

use super::fleet::{point, register, send, PARIS};
use super::{Answer, TestDatabase, TestServer, OPERATOR_EMAIL, OPERATOR_PASSWORD};

/// Like `on_both_backends!`, on a server whose ride workers sweep every 50 ms, and where
/// scooters never go silent: scenarios jump the clock by hours without telemetry.
#[macro_export]
macro_rules! rides_on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                for backend in $crate::common::backends() {
                    eprintln!("{} on {:?}", stringify!($name), backend);
                    let server = $crate::common::TestServer::start_with(backend, |c| {
                        c.rides_sweep_interval_ms = 50;
                        c.silence_timeout_secs = 30 * 86_400;
                    })
                    .await;
                    $crate::scenarios::$name(&server).await;
                    server.stop().await;
                }
            }
        )+
    };
}

/// A second server process on the same database as `s` (its own live view, workers and
/// clock), as when several servers share one PostgreSQL. Stopping it leaves the database.
pub async fn another_server(s: &TestServer) -> TestServer {
    let database = TestDatabase {
        url: s.database.url.clone(),
        _dir: None,
        postgres_name: None,
    };
    let mut config = scootfleet::config::Config::for_database(&database.url);
    config.db_max_connections = 8;
    config.operator_email = Some(OPERATOR_EMAIL.into());
    config.operator_password = Some(scootfleet::config::Secret::new(OPERATOR_PASSWORD));
    config.rides_sweep_interval_ms = 50;
    config.silence_timeout_secs = 30 * 86_400;
    TestServer::start_on(s.backend, database, config).await
}

/// Outside the service area: La Défense.
pub const LA_DEFENSE: (f64, f64) = (48.8920, 2.2362);
/// Inside the service area, in the Eiffel Tower esplanade's no-parking zone.
pub const EIFFEL_ESPLANADE: (f64, f64) = (48.8582, 2.2945);
/// Inside the service area, in the Place Charles-de-Gaulle's no-parking zone.
pub const ARC_DE_TRIOMPHE: (f64, f64) = (48.8738, 2.2950);
/// Inside the service area, where parking is allowed: in front of Notre-Dame.
pub const NOTRE_DAME: (f64, f64) = (48.8530, 2.3490);
/// Inside the Champs-Élysées slow zone (10 km/h).
pub const CHAMPS_ELYSEES: (f64, f64) = (48.86945, 2.30815);

/// A scooter, as the operator registered it, and the token it talks with.
pub struct Scooter {
    pub id: String,
    pub device: String,
}

/// Registers a scooter at `(lat, lon)` with `range_km` of range.
pub async fn scooter_at(
    s: &TestServer,
    operator: &str,
    id: &str,
    (lat, lon): (f64, f64),
    range_km: f64,
) -> Scooter {
    let device = register(s, operator, id, lat, lon, range_km).await;
    Scooter {
        id: id.to_owned(),
        device,
    }
}

/// Registers a scooter with 40 km of range at the Hôtel de Ville.
pub async fn scooter(s: &TestServer, operator: &str, id: &str) -> Scooter {
    scooter_at(s, operator, id, PARIS, 40.0).await
}

/// A rider: id and token.
pub struct RiderAccount {
    pub id: String,
    pub token: String,
}

pub async fn rider(s: &TestServer, email: &str) -> RiderAccount {
    let (id, token) = s.signup(email).await;
    RiderAccount { id, token }
}

/// A rider who has already used the free trial (on a 1-minute ride of a scooter registered
/// here as `spare_id`), then topped up `balance` (nothing for `"0.00"`).
pub async fn rider_without_trial(
    s: &TestServer,
    operator: &str,
    email: &str,
    spare_id: &str,
    balance: &str,
) -> RiderAccount {
    let rider = rider(s, email).await;
    let spare = scooter(s, operator, spare_id).await;
    let ride = start_ride(s, &rider.token, &spare.id).await;
    let ended = end(s, &rider.token, &ride).await;
    assert_eq!(ended.expect(200)["paid"]["free_trial_minutes"], 1);
    if balance != "0.00" {
        s.top_up(&rider.token, balance).await;
    }
    rider
}

pub async fn unlock(s: &TestServer, token: &str, scooter_id: &str) -> Answer {
    s.post(
        "/v1/rides",
        Some(token),
        json!({ "scooter_id": scooter_id }),
    )
    .await
}

/// Unlocks, expecting a ride; returns its id.
pub async fn start_ride(s: &TestServer, token: &str, scooter_id: &str) -> String {
    let answer = unlock(s, token, scooter_id).await;
    answer.expect(201)["ride_id"]
        .as_str()
        .expect("ride_id")
        .to_owned()
}

/// Reserves a scooter (201 expected); returns the reservation's id.
pub async fn reserve(s: &TestServer, token: &str, scooter_id: &str) -> String {
    let answer = s
        .post(
            "/v1/reservations",
            Some(token),
            json!({ "scooter_id": scooter_id }),
        )
        .await;
    answer.expect(201)["reservation_id"]
        .as_str()
        .expect("reservation_id")
        .to_owned()
}

/// Unlocks and confirms the unlock as the scooter would; returns the ride's id.
pub async fn ride_on(s: &TestServer, token: &str, scooter: &Scooter) -> String {
    let ride = start_ride(s, token, &scooter.id).await;
    ack_unlock(s, scooter).await;
    ride
}

pub async fn end(s: &TestServer, token: &str, ride_id: &str) -> Answer {
    s.post(&format!("/v1/rides/{ride_id}/end"), Some(token), json!({}))
        .await
}

pub async fn ride(s: &TestServer, token: &str, ride_id: &str) -> Value {
    s.get(&format!("/v1/rides/{ride_id}"), Some(token))
        .await
        .expect(200)
        .clone()
}

/// Moves a scooter by its own telemetry: one second later on the clock, a point there.
pub async fn move_scooter(s: &TestServer, scooter: &Scooter, (lat, lon): (f64, f64)) {
    s.clock.advance(Duration::seconds(1));
    send(
        s,
        &scooter.device,
        vec![point(lat, lon, 35.0, s.clock.now())],
    )
    .await
    .expect(202);
}

/// The scooter's pending commands, as it polls them.
pub async fn commands(s: &TestServer, scooter: &Scooter) -> Vec<Value> {
    s.get("/v1/device/commands", Some(&scooter.device))
        .await
        .expect(200)["commands"]
        .as_array()
        .expect("commands")
        .clone()
}

/// The first pending command of `kind` for the scooter.
pub async fn command(s: &TestServer, scooter: &Scooter, kind: &str) -> Option<Value> {
    commands(s, scooter)
        .await
        .into_iter()
        .find(|c| c["kind"] == kind)
}

/// Acknowledges every pending `unlock` command, as a healthy scooter would.
pub async fn ack_unlock(s: &TestServer, scooter: &Scooter) {
    let unlock = command(s, scooter, "unlock")
        .await
        .expect("an unlock command");
    let id = unlock["command_id"].as_str().expect("command_id");
    s.post(
        &format!("/v1/device/commands/{id}/ack"),
        Some(&scooter.device),
        json!({}),
    )
    .await
    .expect(200);
}
