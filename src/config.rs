//! Configuration: every setting is an environment variable and the same-named CLI flag.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use clap::Args;

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

    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "SCOOTFLEET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

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
