//! An axum hello-world on the same machine: the ceiling the server's own endpoints are
//! measured against (`benches/nearby_compare.sh` starts it). Listens on `HELLO_BIND`
//! (default 127.0.0.1:18182) until killed.

use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::var("HELLO_BIND").unwrap_or_else(|_| "127.0.0.1:18182".into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let app = Router::new().route("/", get(|| async { "hello" }));
    axum::serve(listener, app).await
}
