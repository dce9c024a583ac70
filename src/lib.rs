//! scootfleet: the backend of a free-floating electric scooter sharing service.

// Docs are read with `cargo doc --document-private-items`; the library serves its binary and tests.
#![allow(rustdoc::private_intra_doc_links)]

/// Accounts: signup, login, the bootstrap operator, failed-login throttling.
pub mod accounts;
/// Shared state, the router of every domain, and `serve`.
pub mod app;
/// Access tokens, password hashing and the per-role request extractors.
pub mod auth;
/// Billing: tariff, packs, wallets, the double-entry ledger and payment providers.
pub mod billing;
/// Time as a dependency, so tests control it.
pub mod clock;
/// Settings from environment variables and CLI flags.
pub mod config;
/// The operator console's static files and settings.
pub mod console;
/// Crews: position, availability and the batteries in their vans.
pub mod crews;
/// The SQLite/PostgreSQL pool and the one-code-path query helper.
pub mod db;
/// Battery-swap dispatch: tasks, assignment to the nearest crew, tours, numbers.
pub mod dispatch;
/// The error type and its problem documents.
pub mod error;
/// Public feeds (GBFS v3.0).
pub mod feeds;
/// The fleet: scooters, their states, telemetry and the live spatial index.
pub mod fleet;
/// Requests to the memory allocator: large blocks mapped, free pages given back.
pub mod heap;
/// `Idempotency-Key`: replaying the first answer to a repeated mutating call.
pub mod idempotency;
/// Opaque identifiers and random secrets.
pub mod ids;
/// Health, metrics and the OpenAPI document.
pub mod ops;
/// Rides: unlock, ride, park, end.
pub mod rides;
/// Logs and metrics of the server itself.
pub mod telemetry;
/// Zones and operating hours: the service area, no-parking and slow zones, and when rides may start.
pub mod zones;
