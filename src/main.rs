//! The `scootfleet` command: runs the server.

use std::sync::Arc;

use clap::Parser;
use scootfleet::{app, clock::SystemClock, config::Config, telemetry};

/// scootfleet: the backend of a free-floating electric scooter sharing service.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing(cli.config.log_format);
    let bind = cli.config.bind;
    let state = app::build_state(cli.config, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    app::serve(listener, state, app::shutdown_signal()).await
}
