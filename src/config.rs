//! Configuration: every setting is an environment variable and the same-named CLI flag.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use clap::Args;
use rust_decimal::Decimal;

use crate::billing::PackCatalogue;
use crate::db::SqliteSync;

/// A value that must never reach logs: `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Server settings. The database URL is a `Secret` because it may carry a password.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Database: `sqlite://FILE` (default, created if missing) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://scootfleet.db")]
    pub database_url: Secret,

    /// Listen address.
    #[arg(
        long = "bind",
        env = "SCOOTFLEET_BIND",
        default_value = "127.0.0.1:8080"
    )]
    pub bind: SocketAddr,

    /// Key that signs access tokens (HS256). When unset, a random key is generated on first
    /// start and kept in the database, so every server sharing that database agrees.
    #[arg(long, env = "SCOOTFLEET_JWT_SECRET")]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "SCOOTFLEET_JWT_TTL_SECS", default_value_t = 86_400)]
    pub jwt_ttl_secs: u64,

    /// Operator account created at start-up if it does not exist.
    #[arg(long, env = "SCOOTFLEET_OPERATOR_EMAIL")]
    pub operator_email: Option<String>,

    /// Password of that operator account (never logged).
    #[arg(long, env = "SCOOTFLEET_OPERATOR_PASSWORD")]
    pub operator_password: Option<Secret>,

    /// Failed logins allowed per account within the window before 429.
    #[arg(
        long,
        env = "SCOOTFLEET_LOGIN_MAX_FAILURES_PER_ACCOUNT",
        default_value_t = 5
    )]
    pub login_max_failures_per_account: u32,

    /// Failed logins allowed per client address within the window before 429.
    #[arg(
        long,
        env = "SCOOTFLEET_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 20
    )]
    pub login_max_failures_per_address: u32,

    /// Length of the failed-login window, in seconds.
    #[arg(long, env = "SCOOTFLEET_LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u64,

    /// Maximum database connections in the pool.
    #[arg(long, env = "SCOOTFLEET_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// How SQLite's commits reach the disk before a client is answered: `grouped` (one
    /// sync of the log shared by every commit before the answer), `each` (each commit syncs
    /// it; as durable, slower) or `normal` (no sync: an answered write survives the server
    /// crashing, not the machine). PostgreSQL always syncs
    #[arg(long, env = "SCOOTFLEET_SQLITE_SYNC", value_enum, default_value_t = SqliteSync::Grouped)]
    pub sqlite_sync: SqliteSync,

    /// Telemetry writers committing side by side, each for its own share of the scooters
    /// (PostgreSQL; SQLite always has one). Default: 1
    #[arg(long, env = "SCOOTFLEET_TELEMETRY_WRITERS")]
    pub telemetry_writers: Option<u16>,

    /// How long a reservation holds a scooter, in minutes.
    #[arg(long, env = "SCOOTFLEET_RESERVATION_MINUTES", default_value_t = 10)]
    pub reservation_minutes: u32,

    /// How long a scooter has to confirm an `unlock` before its ride is cancelled, unbilled.
    #[arg(long, env = "SCOOTFLEET_UNLOCK_ACK_TIMEOUT_SECS", default_value_t = 30)]
    pub unlock_ack_timeout_secs: u64,

    /// How often the ride workers (unlock confirmations, reservation expiry, opening hours)
    /// look at the clock, in milliseconds.
    #[arg(
        long,
        env = "SCOOTFLEET_RIDES_SWEEP_INTERVAL_MS",
        default_value_t = 1_000
    )]
    pub rides_sweep_interval_ms: u64,

    /// Where the built operator console is (`console/dist` after `npm run build`).
    #[arg(long, env = "SCOOTFLEET_CONSOLE_DIR", default_value = "console/dist")]
    pub console_dir: std::path::PathBuf,

    /// Raster basemap tile URL for the console map (`https://…/{z}/{x}/{y}.png`); none draws
    /// zones and scooters on a plain background.
    #[arg(long, env = "SCOOTFLEET_BASEMAP_URL")]
    pub basemap_url: Option<String>,

    /// Attribution shown under that basemap.
    #[arg(long, env = "SCOOTFLEET_BASEMAP_ATTRIBUTION")]
    pub basemap_attribution: Option<String>,

    /// GPS tolerance, in metres, at the border of the service area when a ride ends: a
    /// scooter that far outside still counts as inside, so GPS error never traps a rider
    /// in a paid ride. No-parking zones get no tolerance (see `ZoneSet::parking_verdict`).
    #[arg(
        long,
        env = "SCOOTFLEET_PARKING_BORDER_TOLERANCE_M",
        default_value_t = 15.0
    )]
    pub parking_border_tolerance_m: f64,

    /// How often each server checks the database for zones, hours and tariff stored by
    /// another server sharing it, in milliseconds.
    #[arg(long, env = "SCOOTFLEET_ZONES_REFRESH_MS", default_value_t = 5_000)]
    pub zones_refresh_ms: u64,
    /// Price of a ride minute, VAT included, as a decimal (e.g. `0.28`). This and the VAT,
    /// trial, unlock-minimum and pack settings give the tariff until an operator sets one.
    #[arg(long, env = "SCOOTFLEET_PRICE_PER_MINUTE", default_value = "0.28")]
    pub price_per_minute: Decimal,

    /// Currency of every price and of the wallets (ISO 4217).
    #[arg(long, env = "SCOOTFLEET_CURRENCY", default_value = "EUR")]
    pub currency: String,

    /// VAT rate included in prices, as a fraction (`0.20` for 20 %).
    #[arg(long, env = "SCOOTFLEET_VAT_RATE", default_value = "0.20")]
    pub vat_rate: Decimal,

    /// Free minutes of a new rider's first ride (0 for no trial).
    #[arg(long, env = "SCOOTFLEET_FREE_TRIAL_MINUTES", default_value_t = 15)]
    pub free_trial_minutes: i64,

    /// Wallet balance needed to unlock when the rider has no trial and no pack minutes.
    #[arg(long, env = "SCOOTFLEET_UNLOCK_MINIMUM", default_value = "1.00")]
    pub unlock_minimum: Decimal,

    /// The largest single wallet top-up.
    #[arg(long, env = "SCOOTFLEET_MAX_TOP_UP", default_value = "500.00")]
    pub max_top_up: Decimal,

    /// Minute packs on sale, as `id:minutes:price,…`.
    #[arg(
        long,
        env = "SCOOTFLEET_PACKS",
        default_value = "pack_50:50:12.00,pack_100:100:22.00,pack_200:200:40.00"
    )]
    pub packs: PackCatalogue,

    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "SCOOTFLEET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The least battery range, in km, a scooter needs to be rented.
    #[arg(long, env = "SCOOTFLEET_RENTAL_FLOOR_KM", default_value_t = 5.0)]
    pub rental_floor_km: f64,

    /// A scooter not heard from for this many seconds becomes `non_contactable`.
    #[arg(long, env = "SCOOTFLEET_SILENCE_TIMEOUT_SECS", default_value_t = 600)]
    pub silence_timeout_secs: u64,

    /// How often the fleet looks for silent scooters, in milliseconds.
    #[arg(
        long,
        env = "SCOOTFLEET_FLEET_SWEEP_INTERVAL_MS",
        default_value_t = 5000
    )]
    pub fleet_sweep_interval_ms: u64,

    /// Days telemetry history is kept before it is deleted.
    #[arg(
        long,
        env = "SCOOTFLEET_TELEMETRY_RETENTION_DAYS",
        default_value_t = 30
    )]
    pub telemetry_retention_days: u32,

    /// How often expired telemetry is deleted, in seconds.
    #[arg(
        long,
        env = "SCOOTFLEET_TELEMETRY_RETENTION_INTERVAL_SECS",
        default_value_t = 3600
    )]
    pub telemetry_retention_interval_secs: u64,

    /// How often the live view takes in state changes made by other servers sharing the
    /// database, in milliseconds.
    #[arg(
        long,
        env = "SCOOTFLEET_FLEET_FOLLOW_INTERVAL_MS",
        default_value_t = 1_000
    )]
    pub fleet_follow_interval_ms: u64,

    /// MQTT broker to take telemetry from, e.g. `mqtt://127.0.0.1:1883` (plain TCP; add
    /// `?client_id=…` to name this server's session). Scooters publish the same JSON as
    /// `POST /v1/telemetry` to `scootfleet/scooters/{scooter_id}/telemetry`; the broker
    /// authenticates them. Unset: no MQTT.
    #[arg(long, env = "SCOOTFLEET_MQTT_URL")]
    pub mqtt_url: Option<Secret>,

    /// The address the public reaches this server at, for the absolute URLs of the GBFS
    /// feeds (e.g. `https://gbfs.example.com`). Unset: `http://<bind address>`.
    #[arg(long, env = "SCOOTFLEET_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// GBFS `system_id`: stable, unique among the systems a consumer reads.
    #[arg(long, env = "SCOOTFLEET_GBFS_SYSTEM_ID", default_value = "scootfleet")]
    pub gbfs_system_id: String,

    /// GBFS system name, as riders know the service.
    #[arg(
        long,
        env = "SCOOTFLEET_GBFS_SYSTEM_NAME",
        default_value = "scootfleet"
    )]
    pub gbfs_system_name: String,

    /// Who consumers of the GBFS feeds write to about them.
    #[arg(
        long,
        env = "SCOOTFLEET_GBFS_CONTACT_EMAIL",
        default_value = "gbfs@scootfleet.invalid"
    )]
    pub gbfs_contact_email: String,

    /// Language of the GBFS texts (IETF BCP 47, e.g. `fr`).
    #[arg(long, env = "SCOOTFLEET_GBFS_LANGUAGE", default_value = "en")]
    pub gbfs_language: String,

    /// Range of a fully charged scooter, in km (GBFS `max_range_meters`).
    #[arg(long, env = "SCOOTFLEET_VEHICLE_MAX_RANGE_KM", default_value_t = 60.0)]
    pub vehicle_max_range_km: f64,

    #[command(flatten)]
    pub dispatch: crate::dispatch::DispatchConfig,
}

impl Config {
    /// The defaults, as a fresh machine with no environment gets them.
    pub fn for_database(database_url: &str) -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        let mut config = Wrapper::parse_from(["scootfleet"]).config;
        config.database_url = Secret::new(database_url);
        config
    }
}
