//! scootfleet: the backend of a free-floating electric scooter sharing service.

/// Accounts: signup, login, the bootstrap operator, failed-login throttling.
pub mod accounts;
/// Shared state, the router of every domain, and `serve`.
pub mod app;
/// Access tokens, password hashing and the per-role request extractors.
pub mod auth;
/// Time as a dependency, so tests control it.
pub mod clock;
/// Settings from environment variables and CLI flags.
pub mod config;
/// Crews: position, availability and the batteries in their vans.
pub mod crews;
/// The SQLite/PostgreSQL pool and the one-code-path query helper.
pub mod db;
/// Battery-swap dispatch: tasks, assignment to the nearest crew, tours, numbers.
pub mod dispatch;
/// The error type and its problem documents.
pub mod error;
/// Opaque identifiers and random secrets.
pub mod ids;
/// Health, metrics and the OpenAPI document.
pub mod ops;
/// Logs and metrics of the server itself.
pub mod telemetry;
