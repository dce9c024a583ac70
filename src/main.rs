//! The `scootfleet` command: runs the server, or administers the fleet.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use scootfleet::clock::{Clock, SystemClock};
use scootfleet::{app, config::Config, db::Db, fleet, telemetry};

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
    /// battery_pct`); scooters already registered are skipped. A running server sees them
    /// after its next start.
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
        } => import(&cli.config, &file, tokens).await,
    }
}

async fn import(config: &Config, file: &PathBuf, tokens: Option<PathBuf>) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let rows = fleet::import::parse(&text)
        .map_err(|problem| anyhow::anyhow!("{}: {problem}", file.display()))?;
    let tokens_path = tokens.unwrap_or_else(|| {
        let mut name = file.clone().into_os_string();
        name.push(".tokens.csv");
        name.into()
    });
    let db = Db::connect(config.database_url.expose(), 2).await?;
    db.migrate().await?;
    let tokens_file = fleet::import::create_tokens_file(&tokens_path)
        .with_context(|| format!("creating {}", tokens_path.display()))?;
    let mut tokens_out = std::io::BufWriter::new(tokens_file);
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} scooters ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let imported =
        fleet::import::register_all(&db, &rows, SystemClock.now(), &mut tokens_out, |done| {
            bar.inc(done)
        })
        .await?;
    bar.finish();
    db.close().await;
    println!(
        "{} scooters registered, {} already known; device tokens in {}",
        imported.registered,
        imported.already_known,
        tokens_path.display()
    );
    Ok(())
}
