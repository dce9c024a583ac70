//! The fleet's R-tree: each scooter as a point on the unit sphere, `f32`, with its slot;
//! the node sizes; and the slack within which a scooter stays at its tree point.

use rstar::primitives::GeomWithData;
use rstar::{Envelope, RStarInsertionStrategy, RTree, RTreeParams, SelectionFunction, AABB};

use super::super::{ScooterState, EARTH_RADIUS_M};

pub(super) type Entry = GeomWithData<[f32; 3], u32>;

/// The R-tree's node sizes: up to 16 children, at least 6, 5 reinserted on overflow (the
/// R*-tree's 40 % and 30 %). rstar's default (3 to 6) spends a parent node (48 bytes, and
/// its vector) for every few scooters; measured at a million, 16 takes 4 MiB less and
/// answers searches as fast when fresh and faster once worn by moves.
pub(super) struct TreeParams;

impl RTreeParams for TreeParams {
    const MIN_SIZE: usize = 6;
    const MAX_SIZE: usize = 16;
    const REINSERTION_COUNT: usize = 5;
    type DefaultInsertionStrategy = RStarInsertionStrategy;
}

/// The fleet's R-tree.
pub(super) type Tree = RTree<Entry, TreeParams>;

/// How far a scooter may stand from its point in the tree before the tree follows it: more
/// than a parked scooter's GPS wanders, little beside a search's radius.
pub const SLACK_M: f64 = 5.0;

/// Whether a scooter in `state` has an entry in the tree: all but those on a trip, whose
/// moves searches never need (they list available scooters only) and which come back to
/// the tree where the trip ends.
pub(super) fn in_tree(state: ScooterState) -> bool {
    state != ScooterState::OnTrip
}

/// Finds `slot`'s entry, which lies within the slack of `near`'s centre, through the boxes
/// that meet `near`; with `to`, through those that hold `to` as well: if it is found then,
/// every box above it holds `to`.
#[derive(Clone, Copy)]
pub(super) struct Holding {
    pub(super) slot: u32,
    pub(super) near: AABB<[f32; 3]>,
    pub(super) to: Option<[f32; 3]>,
}

impl Holding {
    /// `slot`'s entry, the scooter standing at `(lat, lon)`.
    pub(super) fn new(slot: u32, lat: f64, lon: f64) -> Self {
        // The slack as a chord, and the f32 rounding of both points, with a margin.
        let reach = chord(SLACK_M) + 3e-7;
        let centre = unit_vector(lat, lon);
        let lower = centre.map(|c| (c - reach) as f32);
        let upper = centre.map(|c| (c + reach) as f32);
        Holding {
            slot,
            near: AABB::from_corners(lower, upper),
            to: None,
        }
    }
}

impl SelectionFunction<Entry> for Holding {
    fn should_unpack_parent(&self, envelope: &AABB<[f32; 3]>) -> bool {
        envelope.intersects(&self.near) && self.to.is_none_or(|to| envelope.contains_point(&to))
    }

    fn should_unpack_leaf(&self, entry: &Entry) -> bool {
        entry.data == self.slot
    }
}

/// The squared distance between two tree points, as a chord on the unit sphere.
pub(super) fn chord_2_between(a: &[f32; 3], b: &[f32; 3]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum()
}

/// The point on the unit sphere of a WGS84 position.
pub(super) fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// A position as the tree holds it: its unit vector rounded to `f32`.
pub(super) fn tree_point(lat: f64, lon: f64) -> [f32; 3] {
    unit_vector(lat, lon).map(|c| c as f32)
}

/// The chord, on the unit sphere, of a great-circle distance in metres.
pub(super) fn chord(distance_m: f64) -> f64 {
    2.0 * (distance_m / (2.0 * EARTH_RADIUS_M)).sin()
}

/// The squared chord, on the unit sphere, of a great-circle distance in metres.
#[cfg(test)]
pub(super) fn chord_2(distance_m: f64) -> f64 {
    chord(distance_m).powi(2)
}

/// How far past a chord the tree's walk must go not to miss a scooter at that chord: the
/// slack between a scooter and its tree point, and the rounding: each `f32` coordinate is
/// off by at most 2⁻²⁵, so a point by at most 5.2·10⁻⁸ and a chord between two by
/// 1.04·10⁻⁷ (0.66 m), plus the `f32` arithmetic's relative error; taken with a margin of
/// more than twice that.
pub(super) fn walk_past(found: f64) -> f64 {
    let reach = found + chord(SLACK_M) + 3e-7 + 1e-6 * found;
    reach * reach
}
