//! Public feeds: GBFS v3.0 for journey planners.

pub mod gbfs;
