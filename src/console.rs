//! The operator console: a single-page app built from `console/` (Vite + MapLibre GL) and
//! served by this binary under `/console`, with the settings it needs at
//! `/console/config.json`.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tower_http::services::{ServeDir, ServeFile};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::ApiJson;

/// What the console needs to draw the map.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsoleConfig {
    /// Raster tile URL template (`https://…/{z}/{x}/{y}.png`); `null` draws a plain background.
    pub basemap_url: Option<String>,
    pub basemap_attribution: Option<String>,
    pub rental_floor_km: f64,
    pub swap_threshold_km: f64,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(console_config))
}

/// The console's settings (public: they hold nothing secret).
#[utoipa::path(get, path = "/console/config.json", tag = "console", responses(
    (status = 200, body = ConsoleConfig),
))]
pub async fn console_config(State(state): State<AppState>) -> ApiJson<ConsoleConfig> {
    ApiJson(ConsoleConfig {
        basemap_url: state.config.basemap_url.clone(),
        basemap_attribution: state.config.basemap_attribution.clone(),
        rental_floor_km: state.config.rental_floor_km,
        swap_threshold_km: state.config.dispatch.threshold_km,
    })
}

/// The built console's files, or a page saying how to build them.
pub fn static_files(dir: PathBuf) -> Router<AppState> {
    let index = dir.join("index.html");
    if index.is_file() {
        let files = ServeDir::new(&dir).fallback(ServeFile::new(index));
        Router::new()
            .route(
                "/console",
                get(|| async { Redirect::permanent("/console/") }),
            )
            .nest_service("/console/", files)
    } else {
        let dir = dir.display().to_string();
        let page = move || {
            let dir = dir.clone();
            async move { not_built(&dir) }
        };
        Router::new()
            .route("/console", get(page.clone()))
            .route("/console/", get(page.clone()))
            .route("/console/{*rest}", get(page))
    }
}

fn not_built(dir: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>scootfleet console</title>\
         <h1>The operator console is not built</h1>\
         <p>The server looked for it in <code>{}</code>. Build it once with Node.js and npm:</p>\
         <pre>cd console &amp;&amp; npm install &amp;&amp; npm run build</pre>\
         <p>then reload this page (or point <code>SCOOTFLEET_CONSOLE_DIR</code> at the built files).</p>",
        html_escape(dir)
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CACHE_CONTROL, "no-store")],
        Html(body),
    )
        .into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
