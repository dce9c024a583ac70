//! The application: shared state, the router of every domain, and `serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::{middleware, Extension, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::TokenKeys;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::{redact_url, Db};
use crate::{
    accounts, billing, console, crews, dispatch, error, feeds, fleet, ops, rides, telemetry, zones,
};

/// Everything a request handler may need, cheap to clone: one shared [`Services`], so a
/// clone per request is one reference count, not one per service.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    pub db: Db,
    pub config: Arc<Config>,
    pub tokens: Arc<TokenKeys>,
    pub clock: Arc<dyn Clock>,
    pub login_limiter: Arc<accounts::LoginLimiter>,
    /// The fleet: live index, telemetry writer, state changes, change feed.
    pub fleet: Arc<fleet::Fleet>,
    /// The zone set in force: service areas, no-parking and slow zones.
    pub zones: Arc<zones::Zones>,
    /// The operating hours in force.
    pub hours: Arc<zones::Hours>,
    /// Prices, VAT, free trial, unlock minimum and pack catalogue in force.
    pub tariff: Arc<billing::Tariffs>,
    /// Where top-up money comes from.
    pub payments: Arc<dyn billing::payments::PaymentProvider>,
    /// Crews' positions and loads in memory, to find the nearest one.
    pub crews: Arc<crews::Crews>,
    /// What this server remembers of scooters' battery-swap hysteresis.
    pub dispatch: Arc<dispatch::Dispatcher>,
    /// The public GBFS vehicle ids, rotated after each rental.
    pub public_ids: Arc<feeds::PublicIds>,
    /// The public vehicle list, shared by the feed requests that come at once.
    pub public_vehicles: Arc<feeds::facts::SharedVehicles>,
    /// Turns true when the server starts stopping: long-lived answers (the live stream)
    /// end then, so a graceful shutdown does not wait on them.
    pub stopping: Arc<watch::Sender<bool>>,
}

/// Connects and migrates the database, loads the signing key and creates the bootstrap
/// operator: everything that must be true before the first request.
pub async fn build_state(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let url = config.database_url.expose().to_owned();
    let db = Db::connect_with(&url, config.db_max_connections, config.sqlite_sync)
        .await
        .with_context(|| format!("opening {}", redact_url(&url)))?;
    db.migrate().await?;
    tracing::info!(database = %redact_url(&url), backend = ?db.backend(), "database ready");

    let secret = match &config.jwt_secret {
        Some(secret) => secret.expose().to_owned(),
        None => {
            db.setting_or_insert("jwt_secret", &crate::ids::new_secret(64))
                .await?
        }
    };
    let tokens = TokenKeys::new(secret.as_bytes(), config.jwt_ttl_secs);

    if let (Some(email), Some(password)) = (&config.operator_email, &config.operator_password) {
        let created = accounts::ensure_operator(&db, email, password.expose(), clock.now()).await?;
        if created {
            tracing::info!(%email, "bootstrap operator account created");
        }
    }

    let tolerance = config.parking_border_tolerance_m;
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        anyhow::bail!(
            "SCOOTFLEET_PARKING_BORDER_TOLERANCE_M must be a number of metres, 0 or more"
        );
    }
    let zone_set = zones::store::load_zone_set(&db, clock.now()).await?;
    tracing::info!(
        version = zone_set.version(),
        zones = zone_set.zones().len(),
        "zones loaded"
    );
    let zones = zones::Zones::new(zone_set, tolerance);
    let (hours_version, hours) = zones::store::load_hours(&db).await?;
    let hours = zones::Hours::new(hours_version, hours);

    let login_limiter = accounts::LoginLimiter::new(&config);
    let fleet = fleet::Fleet::load(&db, config.rental_floor_km, config.telemetry_writers).await?;
    tracing::info!(scooters = fleet.read().len(), "live fleet index built");
    let configured = billing::Tariff::from_config(&config)?;
    let tariff = billing::tariff_store::load(&db, &configured).await?;
    billing::ledger::open_operator_accounts(&db, &tariff.currency, clock.now()).await?;
    if tariff.version > 0 {
        tracing::info!(
            version = tariff.version,
            "tariff set by an operator in force (the price settings only give its currency and top-up maximum)"
        );
    }
    let crews = crews::Crews::load(&db).await.context("loading crews")?;
    let dispatcher =
        dispatch::Dispatcher::new(std::time::Duration::from_secs(config.dispatch.memory_secs));
    Ok(AppState(Arc::new(Services {
        db,
        config: Arc::new(config),
        tokens: Arc::new(tokens),
        clock,
        login_limiter: Arc::new(login_limiter),
        fleet: Arc::new(fleet),
        zones: Arc::new(zones),
        hours: Arc::new(hours),
        tariff: Arc::new(billing::Tariffs::new(tariff)),
        payments: Arc::new(billing::payments::TestPaymentProvider),
        crews: Arc::new(crews),
        dispatch: Arc::new(dispatcher),
        public_ids: Arc::new(feeds::PublicIds::default()),
        public_vehicles: Arc::default(),
        stopping: Arc::new(watch::Sender::new(false)),
    })))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "scootfleet", description = "Free-floating electric scooter sharing: riders, crews, operators, scooters."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "device_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of every route, as served at `/openapi.json`.
#[derive(Clone)]
pub struct OpenApiJson(pub Arc<String>);

/// Every route of the service, with its OpenAPI description collected alongside.
pub fn router(state: AppState) -> Router {
    // Install the recorder before the first request is counted.
    telemetry::prometheus();
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(accounts::http::router())
        .merge(ops::http::router())
        .merge(console::router())
        .merge(fleet::http::router())
        .merge(zones::http::router())
        .merge(billing::http::router())
        .merge(billing::tariff_http::router())
        .merge(rides::http::router())
        .merge(crews::http::router())
        .merge(dispatch::http::router())
        .merge(feeds::http::router())
        .merge(feeds::live::router())
        .split_for_parts();
    let router = router.merge(console::static_files(state.config.console_dir.clone()));
    let api = serde_json::to_string(&api).unwrap_or_else(|_| "{}".to_owned());
    router
        .fallback(error::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), answer))
        .layer(TraceLayer::new_for_http().make_span_with(telemetry::request_span))
        .layer(CatchPanicLayer::custom(|_| {
            use axum::response::IntoResponse;
            error::Error::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(Extension(OpenApiJson(Arc::new(api))))
        .with_state(state)
}

/// Marks an answer whose request's writes are all on disk already (see [`Db::durable`]): it
/// goes out without waiting for the sync of commits made since, by other requests.
#[derive(Clone, Copy, Debug)]
pub struct OnDisk;

/// Every request's own way through: counted and timed (see [`telemetry::HttpTiming`]), and,
/// one that may have written, answered only once what it wrote is on disk (see
/// [`Db::durable`]). Reads, and answers marked [`OnDisk`], go out at once.
async fn answer(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    use axum::response::IntoResponse;
    let timing = telemetry::HttpTiming::start(&request);
    let reads = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let mut response = next.run(request).await;
    if !reads && response.extensions().get::<OnDisk>().is_none() {
        if let Err(err) = state.db.durable().await {
            response =
                error::Error::Internal(anyhow::Error::new(err).context("making writes durable"))
                    .into_response();
        }
    }
    timing.finish(&response);
    response
}

/// Background work that runs beside the HTTP server until shutdown.
fn spawn_workers(state: &AppState, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut workers = Vec::new();
    workers.extend(fleet::workers::spawn(state, shutdown.clone()));
    workers.push(tokio::spawn(zones::follow::follow_database(
        state.clone(),
        shutdown.clone(),
    )));
    workers.push(tokio::spawn(billing::tariff_store::follow_database(
        state.clone(),
        shutdown.clone(),
    )));
    workers.extend(rides::workers::spawn(state, shutdown.clone()));
    workers.push(crate::idempotency::spawn_purger(
        state.clone(),
        shutdown.clone(),
    ));
    workers.push(tokio::spawn(crate::telemetry::keep_up_metrics(
        shutdown.clone(),
    )));
    workers.push(tokio::spawn(crate::heap::keep_trimmed(shutdown.clone())));
    workers.push(tokio::spawn(dispatch::worker::run(state.clone(), shutdown)));
    workers
}

/// Runs `step` every `period` until `shutdown` turns true. A failed step is logged with
/// `what` (e.g. "dispatch sweep") and tried again at the next tick; a slow one delays the
/// next tick rather than bunching ticks up.
pub async fn every<F, Fut, E>(
    period: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Debug,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            // A dropped sender means the server is gone: stop too.
            changed = shutdown.changed() => if changed.is_err() { break },
        }
        if *shutdown.borrow() {
            break;
        }
        if let Err(err) = step().await {
            tracing::warn!(error = ?err, "{what} failed; trying again at the next tick");
        }
    }
}

/// Serves `state` on `listener` until `shutdown` resolves: in-flight requests finish,
/// background workers stop and are awaited, then the pool closes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_workers, stop_rx) = watch::channel(false);
    let workers = spawn_workers(&state, stop_rx);
    let app = router(state.clone());
    tracing::info!(address = %listener.local_addr()?, "scootfleet listening");
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        let stopping = state.stopping.clone();
        async move {
            shutdown.await;
            // Open streams end now, or the graceful shutdown would wait for them forever.
            stopping.send_replace(true);
        }
    })
    .await;
    let _ = stop_workers.send(true);
    for worker in workers {
        if let Err(err) = worker.await {
            tracing::error!(error = %err, "a background worker failed");
        }
    }
    state.db.close().await;
    tracing::info!("scootfleet stopped");
    served.context("serving HTTP")
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
