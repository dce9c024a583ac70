//! Telemetry over MQTT: the server subscribes to `scootfleet/scooters/+/telemetry` and takes
//! each message exactly like a `POST /v1/telemetry` from that scooter. The broker
//! authenticates devices (it only lets a scooter publish on its own topic).
//!
//! Messages are QoS 1 and acknowledged to the broker only once their points are committed,
//! so a crash before the commit means the broker delivers them again (duplicates are
//! dropped by `recorded_at`). Invalid messages are logged, counted and acknowledged: sending
//! them again would not make them valid.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::accept::Followed;
use super::http::{readings, TelemetryRequest};
use crate::app::AppState;

/// The topic filter the server subscribes to.
pub const TOPIC_FILTER: &str = "scootfleet/scooters/+/telemetry";

/// How often new commands for scooters are published.
const COMMAND_PUBLISH_INTERVAL: Duration = Duration::from_millis(200);

/// Messages being stored at once; more wait in the broker.
const MAX_IN_FLIGHT: usize = 256;

/// The scooter a telemetry topic names, if it is one.
pub fn scooter_of_topic(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix("scootfleet/scooters/")?;
    let id = rest.strip_suffix("/telemetry")?;
    super::is_valid_scooter_id(id).then_some(id)
}

/// Broker options from `url`, with a client id and a persistent session.
pub fn options(url: &str) -> anyhow::Result<MqttOptions> {
    let url = if url.contains("client_id=") {
        url.to_owned()
    } else {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}client_id=scootfleet-server")
    };
    let mut options =
        MqttOptions::parse_url(url).map_err(|e| anyhow::anyhow!("SCOOTFLEET_MQTT_URL: {e}"))?;
    options
        .set_manual_acks(true)
        .set_clean_session(false)
        .set_keep_alive(Duration::from_secs(30));
    Ok(options)
}

/// Receives telemetry until shutdown, then waits for the messages it is storing.
pub async fn run(state: AppState, options: MqttOptions, mut shutdown: watch::Receiver<bool>) {
    let (client, mut events) = AsyncClient::new(options, 1024);
    let mut storing = JoinSet::new();
    // Commands for scooters go out on the same connection.
    let mut publish_tick = tokio::time::interval(COMMAND_PUBLISH_INTERVAL);
    publish_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut publishing: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let event = tokio::select! {
            event = events.poll() => event,
            _ = publish_tick.tick() => {
                if publishing.as_ref().is_none_or(|task| task.is_finished()) {
                    let (state, client) = (state.clone(), client.clone());
                    publishing = Some(tokio::spawn(async move {
                        crate::rides::commands::publish_pending(&state, &client).await;
                    }));
                }
                continue;
            }
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!("connected to the MQTT broker");
                if let Err(err) = client.try_subscribe(TOPIC_FILTER, QoS::AtLeastOnce) {
                    tracing::error!(error = %err, "cannot subscribe to telemetry");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                while storing.len() >= MAX_IN_FLIGHT {
                    storing.join_next().await;
                }
                storing.spawn(take(state.clone(), client.clone(), publish));
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "MQTT connection lost; retrying");
                if pause(&mut shutdown).await {
                    break;
                }
            }
        }
        // Reap finished messages as we go.
        while storing.try_join_next().is_some() {}
    }
    while storing.join_next().await.is_some() {}
    if let Some(task) = publishing {
        let _ = task.await;
    }
    let _ = client.try_disconnect();
    drain(&mut events).await;
}

/// Waits a second before reconnecting; `true` on shutdown.
async fn pause(shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(1)) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    }
}

/// Lets the event loop send the last acknowledgements and the disconnect.
async fn drain(events: &mut EventLoop) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(event) = events.poll().await {
            if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    })
    .await;
}

/// Stores one message's points, then acknowledges it once all it wrote is on disk.
async fn take(state: AppState, client: AsyncClient, publish: Publish) {
    let followed = match store(&state, &publish).await {
        Ok(followed) => {
            metrics::counter!("scootfleet_mqtt_messages_total", "result" => "stored").increment(1);
            followed
        }
        Err(Refused(why)) => {
            metrics::counter!("scootfleet_mqtt_messages_total", "result" => "refused").increment(1);
            tracing::warn!(topic = %publish.topic, %why, "telemetry message refused");
            // Nothing was written.
            Followed::Nothing
        }
        Err(Failed(why)) => {
            // Not acknowledged: the broker will deliver it again.
            tracing::error!(topic = %publish.topic, %why, "telemetry message not stored");
            return;
        }
    };
    // The points are on disk already; what followed them may not be.
    if followed == Followed::Writes {
        if let Err(err) = state.db.durable().await {
            // Not acknowledged: the broker will deliver it again, and a repeat is stored once.
            tracing::error!(error = %err, "telemetry message not made durable");
            return;
        }
    }
    if let Err(err) = client.ack(&publish).await {
        tracing::warn!(error = %err, "cannot acknowledge a telemetry message");
    }
}

enum Outcome {
    Refused(String),
    Failed(String),
}
use Outcome::{Failed, Refused};

async fn store(state: &AppState, publish: &Publish) -> Result<Followed, Outcome> {
    let id =
        scooter_of_topic(&publish.topic).ok_or_else(|| Refused("not a telemetry topic".into()))?;
    let scooter_id = state
        .fleet
        .get(id)
        .map(|s| s.scooter_id)
        .ok_or_else(|| Refused(format!("no scooter {id} is registered")))?;
    let body: TelemetryRequest = serde_json::from_slice(&publish.payload)
        .map_err(|e| Refused(format!("the JSON could not be read: {e}")))?;
    let now = state.clock.now();
    let points = readings(body, now).map_err(|e| Refused(e.to_string()))?;
    super::accept::accept_points(state, scooter_id, points, now)
        .await
        .map_err(|e| Failed(e.to_string()))
}

/// Starts the MQTT worker when a broker is configured.
pub fn spawn(
    state: &AppState,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let url = state.config.mqtt_url.as_ref()?;
    match options(url.expose()) {
        Ok(options) => Some(tokio::spawn(run(state.clone(), options, shutdown))),
        Err(err) => {
            tracing::error!(error = %err, "MQTT telemetry disabled");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_their_scooter() {
        assert_eq!(
            scooter_of_topic("scootfleet/scooters/CS-0042/telemetry"),
            Some("CS-0042")
        );
        assert_eq!(scooter_of_topic("scootfleet/scooters//telemetry"), None);
        assert_eq!(scooter_of_topic("scootfleet/scooters/a/b/telemetry"), None);
        assert_eq!(scooter_of_topic("other/scooters/CS-1/telemetry"), None);
    }

    #[test]
    fn urls_get_a_client_id() {
        let plain = options("mqtt://127.0.0.1:1883").unwrap();
        assert_eq!(plain.client_id(), "scootfleet-server");
        let named = options("mqtt://127.0.0.1:1883?client_id=node-2").unwrap();
        assert_eq!(named.client_id(), "node-2");
        assert!(options("http://127.0.0.1").is_err());
    }
}
