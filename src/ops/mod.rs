//! Running the service: health, Prometheus metrics and the OpenAPI description.

pub mod http;
pub mod kpis;
