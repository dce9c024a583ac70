//! Commands for scooters published over MQTT, on every backend (skipped, saying so, when no
//! broker answers on 127.0.0.1:1883 and SCOOTFLEET_TEST_MQTT is unset).

mod common;

use std::time::Duration;

use common::fleet::{register, PARIS};
use common::{backends, TestServer};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use scootfleet::config::Secret;
use serde_json::{json, Value};

async fn test_broker() -> Option<String> {
    if let Ok(url) = std::env::var("SCOOTFLEET_TEST_MQTT") {
        return Some(url);
    }
    match tokio::net::TcpStream::connect("127.0.0.1:1883").await {
        Ok(_) => Some("mqtt://127.0.0.1:1883".into()),
        Err(_) => {
            eprintln!("no MQTT broker on 127.0.0.1:1883: MQTT command test skipped");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_and_lock_commands_are_published_to_the_scooter() {
    let Some(broker) = test_broker().await else {
        return;
    };
    for backend in backends() {
        let run = scootfleet::ids::new_secret(8);
        let server_url = format!("{broker}?client_id=sf-cmd-test-{run}");
        let s =
            TestServer::start_with(backend, |c| c.mqtt_url = Some(Secret::new(server_url))).await;
        let operator = s.operator_token().await;
        let id = format!("MC-{run}");
        let device = register(&s, &operator, &id, PARIS.0, PARIS.1, 30.0).await;

        // The scooter listens on its command topic.
        let mut options = MqttOptions::parse_url(format!("{broker}?client_id=sf-scooter-{run}"))
            .expect("scooter options");
        options.set_keep_alive(Duration::from_secs(5));
        let (scooter, mut events) = AsyncClient::new(options, 64);
        scooter
            .subscribe(
                format!("scootfleet/scooters/{id}/commands"),
                QoS::AtLeastOnce,
            )
            .await
            .expect("subscribe");
        let (tx, mut received) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let pump = tokio::spawn(async move {
            while let Ok(event) = events.poll().await {
                if let Event::Incoming(Packet::Publish(publish)) = event {
                    if let Ok(command) = serde_json::from_slice(&publish.payload) {
                        let _ = tx.send(command);
                    }
                }
            }
        });
        // Let the subscription settle before the command is published.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let (_, rider) = s.signup(&format!("mqtt-{run}@example.com")).await;
        let ride = s
            .post("/v1/rides", Some(&rider), json!({"scooter_id": id}))
            .await;
        let ride_id = ride.expect(201)["ride_id"].as_str().unwrap().to_owned();
        let unlock = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("an unlock command within 10 s")
            .expect("command");
        assert_eq!(unlock["kind"], "unlock");
        assert_eq!(unlock["status"], "pending");
        // The same command is there for polling until the scooter confirms it over HTTP.
        let polled = s.get("/v1/device/commands", Some(&device)).await;
        assert_eq!(
            polled.expect(200)["commands"][0]["command_id"],
            unlock["command_id"]
        );
        let command_id = unlock["command_id"].as_str().unwrap();
        s.post(
            &format!("/v1/device/commands/{command_id}/ack"),
            Some(&device),
            json!({}),
        )
        .await
        .expect(200);
        let polled = s.get("/v1/device/commands", Some(&device)).await;
        assert_eq!(polled.expect(200)["commands"], json!([]));
        s.post(&format!("/v1/rides/{ride_id}/end"), Some(&rider), json!({}))
            .await
            .expect(200);
        let lock = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("a lock command within 10 s")
            .expect("command");
        assert_eq!(lock["kind"], "lock");
        assert_ne!(lock["command_id"], unlock["command_id"]);

        pump.abort();
        s.stop().await;
    }
}
