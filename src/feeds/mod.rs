//! Public feeds and the operators' live view: GBFS v3.0 for journey planners and cities,
//! and the server-sent stream of fleet changes the console's map follows.
//!
//! [`gbfs`] builds the documents from plain facts (pure), [`facts`] gathers those facts from
//! the fleet, zones, hours and tariff in force, [`public_ids`] hands out the public vehicle
//! ids, [`http`] serves the feeds and [`live`] the stream.
//!
//! [`gbfs`]: crate::feeds::gbfs
//! [`facts`]: crate::feeds::facts
//! [`public_ids`]: crate::feeds::public_ids
//! [`http`]: crate::feeds::http
//! [`live`]: crate::feeds::live

pub mod facts;
pub mod gbfs;
pub mod http;
pub mod live;
pub mod public_ids;

pub use public_ids::{PublicId, PublicIds};
