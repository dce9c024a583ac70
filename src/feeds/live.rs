//! `GET /v1/ops/live`: the fleet's changes as server-sent events, for the console's map.
//!
//! Fed by the fleet's change feed (no polling): every registration, move and state change
//! becomes `{"type":"scooter","scooter":{…}}` with the fields of `GET /v1/ops/fleet`; a new
//! zone set in force becomes `{"type":"zones","version":N}`. A listener that falls too far
//! behind gets `{"type":"resync"}` and should reload the fleet.
//! Comments keep idle connections alive; the stream ends when the server stops, so a
//! graceful shutdown never waits on an open console.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Operator;
use crate::fleet::ops::FleetScooter;
use crate::fleet::FleetChange;
use crate::zones::ZoneSet;

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(live))
}

/// The data of the event a fleet change becomes.
pub fn event_data(change: &FleetChange) -> serde_json::Value {
    json!({ "type": "scooter", "scooter": FleetScooter::from(&change.scooter) })
}

/// Live fleet changes as server-sent events (`text/event-stream`).
#[utoipa::path(
    get, path = "/v1/ops/live", tag = "fleet", security(("bearer" = [])),
    responses(
        (status = 200, description = "Server-sent events: `{\"type\":\"scooter\",\"scooter\":{…}}` per change, `{\"type\":\"resync\"}` after falling behind", content_type = "text/event-stream"),
        (status = 401, body = crate::error::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, body = crate::error::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn live(
    State(state): State<AppState>,
    _operator: Operator,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = state.fleet.subscribe();
    let mut zones = state.zones.subscribe();
    zones.mark_unchanged();
    let stopping = state.stopping.subscribe();
    Sse::new(events(changes, zones, stopping)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The events of `changes` and `zones` until the server starts stopping.
fn events(
    changes: broadcast::Receiver<FleetChange>,
    zones: watch::Receiver<Arc<ZoneSet>>,
    stopping: watch::Receiver<bool>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let listening = (changes, zones, stopping);
    stream::unfold(
        listening,
        |(mut changes, mut zones, mut stopping)| async move {
            if *stopping.borrow() {
                return None;
            }
            let data = tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => event_data(&change),
                    Err(RecvError::Lagged(_)) => json!({ "type": "resync" }),
                    Err(RecvError::Closed) => return None,
                },
                changed = zones.changed() => match changed {
                    Ok(()) => json!({ "type": "zones", "version": zones.borrow_and_update().version() }),
                    Err(_) => return None,
                },
                _ = stopping.wait_for(|stop| *stop) => return None,
            };
            let event = Event::default().data(data.to_string());
            Some((Ok(event), (changes, zones, stopping)))
        },
    )
}
