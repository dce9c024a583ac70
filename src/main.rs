//! The `scootfleet` command: runs the server, or administers the fleet.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use scootfleet::clock::{Clock, SystemClock};
use scootfleet::{app, config::Config, fleet, telemetry};

/// scootfleet: the backend of a free-floating electric scooter sharing service.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server (the default).
    Serve,
    /// Manages the fleet.
    Scooters {
        #[command(subcommand)]
        command: ScooterCommand,
    },
}

#[derive(Subcommand)]
enum ScooterCommand {
    /// Registers every scooter of a JSON or CSV file (`scooter_id, lat, lon, range_km,
    /// battery_pct`); scooters already registered are skipped. A running server takes
    /// them in within a minute.
    Import {
        /// The file to read.
        file: PathBuf,
        /// Where to write the new device tokens (default: FILE.tokens.csv); must not exist.
        #[arg(long)]
        tokens: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    scootfleet::heap::keep_large_blocks_mapped();
    let cli = Cli::parse();
    telemetry::init_tracing(cli.config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let bind = cli.config.bind;
            let state = app::build_state(cli.config, Arc::new(SystemClock)).await?;
            let listener = tokio::net::TcpListener::bind(bind).await?;
            app::serve(listener, state, app::shutdown_signal()).await
        }
        Command::Scooters {
            command: ScooterCommand::Import { file, tokens },
        } => {
            let summary =
                fleet::import::run(&cli.config, &file, tokens, true, SystemClock.now()).await?;
            println!("{summary}");
            Ok(())
        }
    }
}
