//! Running the service: health, Prometheus metrics, the OpenAPI description, and the
//! operator's cross-domain views (today's numbers, one scooter with its ride or task).

pub mod http;
pub mod kpis;
pub mod scooter;
