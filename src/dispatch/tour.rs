//! Tours: the order a crew visits its tasks in, starting from where its van is.
//!
//! A nearest-neighbour tour improved by 2-opt (reversing a stretch of the tour whenever that
//! shortens it, until no reversal does). The tour is an open path: the van does not have to
//! come back to where it started.

use super::distance_m;

/// The order (indices into `stops`) to visit `stops` from `start`, all `(lat, lon)`.
pub fn tour(start: (f64, f64), stops: &[(f64, f64)]) -> Vec<usize> {
    let mut order = nearest_neighbour(start, stops);
    two_opt(start, stops, &mut order);
    order
}

/// Always the nearest stop not yet visited next.
pub fn nearest_neighbour(start: (f64, f64), stops: &[(f64, f64)]) -> Vec<usize> {
    let mut left: Vec<usize> = (0..stops.len()).collect();
    let mut order = Vec::with_capacity(stops.len());
    let mut here = start;
    while !left.is_empty() {
        let (slot, _) = left
            .iter()
            .enumerate()
            .map(|(slot, &i)| (slot, distance_m(here, stops[i])))
            .fold((0, f64::INFINITY), |best, next| {
                if next.1 < best.1 {
                    next
                } else {
                    best
                }
            });
        let next = left.swap_remove(slot);
        here = stops[next];
        order.push(next);
    }
    order
}

/// Length in metres of the path from `start` through `stops` in `order`.
pub fn length_m(start: (f64, f64), stops: &[(f64, f64)], order: &[usize]) -> f64 {
    let mut here = start;
    order
        .iter()
        .map(|&i| {
            let leg = distance_m(here, stops[i]);
            here = stops[i];
            leg
        })
        .sum()
}

/// Improvements shorter than this (metres) are not worth another pass.
const EPSILON_M: f64 = 1e-6;

/// Reverses stretches of `order` while that shortens the path; never makes it longer.
fn two_opt(start: (f64, f64), stops: &[(f64, f64)], order: &mut [usize]) {
    let n = order.len();
    // The path's points: the start, then the stops in order.
    let point = |order: &[usize], k: usize| if k == 0 { start } else { stops[order[k - 1]] };
    let mut improved = true;
    while improved {
        improved = false;
        // Reverse path positions i..=j (1-based stops); the edge into i and out of j change.
        for i in 1..n {
            for j in i + 1..=n {
                let before = distance_m(point(order, i - 1), point(order, i))
                    + if j < n {
                        distance_m(point(order, j), point(order, j + 1))
                    } else {
                        0.0
                    };
                let after = distance_m(point(order, i - 1), point(order, j))
                    + if j < n {
                        distance_m(point(order, i), point(order, j + 1))
                    } else {
                        0.0
                    };
                if after + EPSILON_M < before {
                    order[i - 1..j].reverse();
                    improved = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use geo::{coord, Intersects, Line};

    use super::*;

    fn path(start: (f64, f64), stops: &[(f64, f64)], order: &[usize]) -> Vec<Line<f64>> {
        let mut points = vec![start];
        points.extend(order.iter().map(|&i| stops[i]));
        points
            .windows(2)
            .map(|w| {
                Line::new(
                    coord! { x: w[0].1, y: w[0].0 },
                    coord! { x: w[1].1, y: w[1].0 },
                )
            })
            .collect()
    }

    fn crossings(lines: &[Line<f64>]) -> usize {
        let mut count = 0;
        for a in 0..lines.len() {
            for b in a + 2..lines.len() {
                if lines[a].intersects(&lines[b]) {
                    count += 1;
                }
            }
        }
        count
    }

    /// A small example where nearest neighbour crosses itself: near the equator, so the
    /// plane drawing and the sphere agree.
    fn zigzag() -> ((f64, f64), Vec<(f64, f64)>) {
        let start = (0.0, 0.0);
        let stops = vec![
            (0.0, 0.007),
            (0.008, 0.008),
            (-0.007, 0.01),
            (-0.004, 0.01),
            (0.008, -0.002),
        ];
        (start, stops)
    }

    #[test]
    fn two_opt_removes_crossings_and_never_lengthens_the_tour() {
        let (start, stops) = zigzag();
        let greedy = nearest_neighbour(start, &stops);
        let improved = tour(start, &stops);
        assert!(length_m(start, &stops, &improved) <= length_m(start, &stops, &greedy) + 1e-6);
        assert_eq!(
            crossings(&path(start, &stops, &improved)),
            0,
            "{improved:?}"
        );
        let mut sorted = improved.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..stops.len()).collect::<Vec<_>>(),
            "every stop once"
        );
    }

    #[test]
    fn the_example_is_one_where_greedy_crosses() {
        let (start, stops) = zigzag();
        let greedy = nearest_neighbour(start, &stops);
        assert!(crossings(&path(start, &stops, &greedy)) > 0, "{greedy:?}");
        assert!(length_m(start, &stops, &tour(start, &stops)) < length_m(start, &stops, &greedy));
    }

    #[test]
    fn never_longer_than_nearest_neighbour_on_many_layouts() {
        // A deterministic scatter of points around Paris.
        let mut seed: u64 = 42;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f64) / f64::from(u32::MAX >> 1)
        };
        for size in 0..12 {
            let start = (48.85 + next() * 0.05, 2.30 + next() * 0.08);
            let stops: Vec<_> = (0..size)
                .map(|_| (48.82 + next() * 0.08, 2.25 + next() * 0.15))
                .collect();
            let greedy = length_m(start, &stops, &nearest_neighbour(start, &stops));
            let improved = length_m(start, &stops, &tour(start, &stops));
            assert!(improved <= greedy + 1e-6, "{size}: {improved} > {greedy}");
        }
    }

    #[test]
    fn trivial_tours() {
        assert!(tour((0.0, 0.0), &[]).is_empty());
        assert_eq!(tour((0.0, 0.0), &[(1.0, 1.0)]), vec![0]);
    }
}
