//! Observability: structured logs with a span per request, Prometheus metrics by route.
//!
//! (Scooters' position reports are the fleet's telemetry and live in `fleet`.)

use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber; `RUST_LOG` refines the default `info` level.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second call (tests start many servers in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("duration_seconds".into()),
                &[
                    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0,
                ],
            )
            .map(PrometheusBuilder::build_recorder);
        match recorder {
            Ok(recorder) => {
                let handle = recorder.handle();
                // Fails only if another recorder is installed; ours then stays empty.
                if metrics::set_global_recorder(recorder).is_err() {
                    tracing::warn!("a metrics recorder was already installed");
                }
                handle
            }
            Err(err) => {
                tracing::error!(error = %err, "metrics buckets rejected; using defaults");
                let recorder = PrometheusBuilder::new().build_recorder();
                let handle = recorder.handle();
                let _ = metrics::set_global_recorder(recorder);
                handle
            }
        }
    })
}

/// How often the histograms' recorded samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds the histograms' samples into their buckets every few seconds until shutdown. A
/// histogram keeps each sample it records until then (about 16 bytes a request): a scrape
/// of `/metrics` does it too, but a server nobody scrapes would otherwise grow for ever.
pub async fn keep_up_metrics(shutdown: tokio::sync::watch::Receiver<bool>) {
    crate::app::every(UPKEEP_EVERY, shutdown, "metrics upkeep", || async {
        prometheus().run_upkeep();
        Ok::<(), std::convert::Infallible>(())
    })
    .await
}

/// A label value kept for the life of the process, so that labelling a request allocates
/// nothing. Only route templates, methods and status codes come here: a bounded set.
fn label(value: &str) -> &'static str {
    static LABELS: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let labels = LABELS.get_or_init(Default::default);
    let known = labels
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(value)
        .copied();
    if let Some(known) = known {
        return known;
    }
    let mut labels = labels
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = labels.get(value) {
        return known;
    }
    let leaked: &'static str = Box::leak(value.to_owned().into_boxed_str());
    labels.insert(leaked);
    leaked
}

/// A request being counted and timed, labelled by route template (never the raw path).
pub struct HttpTiming {
    started: Instant,
    method: &'static str,
    route: &'static str,
}

impl HttpTiming {
    /// Starts timing `request` (its route already matched).
    pub fn start(request: &Request) -> Self {
        let route = label(
            request
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str),
        );
        let method = match *request.method() {
            // Any client may invent a method: those are not worth a label each.
            Method::GET
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::HEAD
            | Method::OPTIONS => label(request.method().as_str()),
            _ => "other",
        };
        HttpTiming {
            started: Instant::now(),
            method,
            route,
        }
    }

    /// Counts the request with its answer's status and records how long it took.
    pub fn finish(self, response: &Response) {
        let HttpTiming {
            started,
            method,
            route,
        } = self;
        let status = label(response.status().as_str());
        let elapsed = started.elapsed().as_secs_f64();
        metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status)
            .increment(1);
        metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
            .record(elapsed);
    }
}

/// The span each request runs in: method and route template, no query string or ids.
pub fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("unmatched");
    tracing::info_span!("request", method = %request.method(), route = %route)
}
