//! A zone set in memory and the spatial questions other domains ask of it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use geo::{Distance, Euclidean, Intersects, MapCoords, MultiPolygon, Point, Polygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

/// What a zone means for riders.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ZoneKind {
    /// Riding is offered here; unlocking and ending rides need a position inside.
    ServiceArea,
    /// Rides may not end here.
    NoParking,
    /// Scooters are limited to `max_speed_kmh` here.
    Slow { max_speed_kmh: f64 },
}

impl ZoneKind {
    /// The `properties.kind` naming this kind in GeoJSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneKind::ServiceArea => "service_area",
            ZoneKind::NoParking => "no_parking",
            ZoneKind::Slow { .. } => "slow",
        }
    }
}

/// One feature of the operator's map.
#[derive(Clone, Debug)]
pub struct Zone {
    pub kind: ZoneKind,
    /// `properties.name`, shown to riders when it matters (e.g. "Place de la Concorde").
    pub name: Option<String>,
    /// Longitude as `x`, latitude as `y`, as GeoJSON has them.
    pub area: MultiPolygon<f64>,
}

/// Why a ride may not end where the scooter stands.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ParkingRefusal {
    #[error("the scooter is outside the service area")]
    OutsideServiceArea,
    #[error("the scooter is in a no-parking zone")]
    NoParkingZone { name: Option<String> },
}

impl ParkingRefusal {
    /// A sentence for the rider, for the `detail` of a `parking_not_allowed` refusal.
    pub fn detail(&self) -> String {
        match self {
            ParkingRefusal::OutsideServiceArea => {
                "The scooter is outside the service area: please ride back inside it to end your ride.".into()
            }
            ParkingRefusal::NoParkingZone { name: Some(name) } => format!(
                "Parking is not allowed here ({name}): please move the scooter out of the no-parking zone to end your ride."
            ),
            ParkingRefusal::NoParkingZone { name: None } => {
                "Parking is not allowed here: please move the scooter out of the no-parking zone to end your ride.".into()
            }
        }
    }
}

/// One polygon's envelope in the R-tree, pointing at its zone and polygon.
type Envelope = GeomWithData<Rectangle<[f64; 2]>, (usize, usize)>;

/// Metres per degree of latitude (and of longitude at the equator), on a spherical Earth.
const METRES_PER_DEGREE: f64 = 111_320.0;

/// One version of the operator's map, ready to answer point questions in microseconds.
#[derive(Debug)]
pub struct ZoneSet {
    version: i64,
    created_at: DateTime<Utc>,
    created_by: Option<String>,
    feature_collection: Arc<serde_json::Value>,
    zones: Vec<Zone>,
    index: RTree<Envelope>,
}

impl ZoneSet {
    /// A set made of `zones`, parsed from `feature_collection` (kept to be served as is).
    pub fn new(
        version: i64,
        created_at: DateTime<Utc>,
        created_by: Option<String>,
        feature_collection: serde_json::Value,
        zones: Vec<Zone>,
    ) -> Self {
        let envelopes = zones
            .iter()
            .enumerate()
            .flat_map(|(z, zone)| {
                zone.area
                    .0
                    .iter()
                    .enumerate()
                    .filter_map(move |(p, polygon)| {
                        let rect = geo::BoundingRect::bounding_rect(polygon)?;
                        let corners = Rectangle::from_corners(
                            rect.min().x_y().into(),
                            rect.max().x_y().into(),
                        );
                        Some(Envelope::new(corners, (z, p)))
                    })
            })
            .collect();
        Self {
            version,
            created_at,
            created_by,
            feature_collection: Arc::new(feature_collection),
            zones,
            index: RTree::bulk_load(envelopes),
        }
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// The operator who uploaded this set; `None` for the built-in defaults.
    pub fn created_by(&self) -> Option<&str> {
        self.created_by.as_deref()
    }

    /// The GeoJSON FeatureCollection as it was uploaded.
    pub fn feature_collection(&self) -> &serde_json::Value {
        &self.feature_collection
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The polygons whose envelope holds the point, with their zone.
    fn polygons_at(&self, lon: f64, lat: f64) -> impl Iterator<Item = (&Zone, &Polygon<f64>)> {
        self.index
            .locate_all_at_point(&[lon, lat])
            .map(|envelope| self.polygon(envelope.data))
    }

    fn polygon(&self, (zone, polygon): (usize, usize)) -> (&Zone, &Polygon<f64>) {
        let zone = &self.zones[zone];
        (zone, &zone.area.0[polygon])
    }

    /// The zones that hold `(lat, lon)`, border included.
    fn zones_at(&self, lat: f64, lon: f64) -> impl Iterator<Item = &Zone> {
        let valid = is_valid_position(lat, lon);
        let point = Point::new(lon, lat);
        self.polygons_at(lon, lat)
            .filter(move |(_, polygon)| valid && polygon.intersects(&point))
            .map(|(zone, _)| zone)
    }

    /// Whether `(lat, lon)` lies in a service area (its border counts as inside; its holes
    /// do not). Invalid coordinates are never inside.
    pub fn in_service_area(&self, lat: f64, lon: f64) -> bool {
        self.zones_at(lat, lon)
            .any(|zone| zone.kind == ZoneKind::ServiceArea)
    }

    /// The no-parking zone holding `(lat, lon)`, if any.
    pub fn no_parking_zone_at(&self, lat: f64, lon: f64) -> Option<&Zone> {
        self.zones_at(lat, lon)
            .find(|zone| zone.kind == ZoneKind::NoParking)
    }

    /// The lowest `max_speed_kmh` of the slow zones holding `(lat, lon)`; `None` outside
    /// every slow zone.
    pub fn speed_limit_kmh(&self, lat: f64, lon: f64) -> Option<f64> {
        self.zones_at(lat, lon)
            .filter_map(|zone| match zone.kind {
                ZoneKind::Slow { max_speed_kmh } => Some(max_speed_kmh),
                _ => None,
            })
            .reduce(f64::min)
    }

    /// Whether a ride may end at `(lat, lon)`.
    ///
    /// The border tolerance favours the rider: a position up to `border_tolerance_m` metres
    /// outside a service area (its outer border or the border of one of its holes) still
    /// counts as inside. A phone or scooter GPS fix is often off by 5–15 m, and a rider who
    /// parked correctly on the border must never be trapped in a ride that keeps costing
    /// money because the fix landed on the wrong side. The cost of the tolerance is a
    /// scooter left a few metres outside the area, which a crew can fetch.
    ///
    /// No-parking zones get no such tolerance, in either direction: a position inside one
    /// (border included) is refused even near its edge, because those zones protect places
    /// (a roundabout, a landmark's esplanade) where a scooter left by mistake is a hazard,
    /// and the rider can always move a few metres further before ending.
    pub fn parking_verdict(
        &self,
        lat: f64,
        lon: f64,
        border_tolerance_m: f64,
    ) -> Result<(), ParkingRefusal> {
        if !is_valid_position(lat, lon) {
            return Err(ParkingRefusal::OutsideServiceArea);
        }
        if let Some(zone) = self.no_parking_zone_at(lat, lon) {
            return Err(ParkingRefusal::NoParkingZone {
                name: zone.name.clone(),
            });
        }
        if self.in_service_area(lat, lon) || self.service_area_within(lat, lon, border_tolerance_m)
        {
            Ok(())
        } else {
            Err(ParkingRefusal::OutsideServiceArea)
        }
    }

    /// Whether a service area lies within `metres` of `(lat, lon)`.
    fn service_area_within(&self, lat: f64, lon: f64, metres: f64) -> bool {
        if !(metres.is_finite() && metres > 0.0) {
            return false;
        }
        let metres_per_degree_lon = METRES_PER_DEGREE * lat.to_radians().cos();
        let dlat = metres / METRES_PER_DEGREE;
        let dlon = metres / metres_per_degree_lon.max(1.0);
        let search = AABB::from_corners([lon - dlon, lat - dlat], [lon + dlon, lat + dlat]);
        self.index
            .locate_in_envelope_intersecting(&search)
            .map(|envelope| self.polygon(envelope.data))
            .filter(|(zone, _)| zone.kind == ZoneKind::ServiceArea)
            .any(|(_, polygon)| {
                // Over a few metres a local equirectangular projection around the point is
                // exact to the millimetre: east and north in metres, the point at the origin.
                let local = polygon.map_coords(|c| geo::Coord {
                    x: (c.x - lon) * metres_per_degree_lon,
                    y: (c.y - lat) * METRES_PER_DEGREE,
                });
                Euclidean.distance(&Point::new(0.0, 0.0), &local) <= metres
            })
    }
}

/// Latitude within ±90°, longitude within ±180°, both finite.
pub fn is_valid_position(lat: f64, lon: f64) -> bool {
    lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
}

#[cfg(test)]
mod tests {
    use geo::{polygon, MultiPolygon};

    use super::*;

    /// A 1 km square service area around (48.85, 2.35) with a 200 m square hole in the
    /// middle, a no-parking square in one corner and a slow zone across the south half.
    fn sample() -> ZoneSet {
        let square = polygon!(
            exterior: [
                (x: 2.343, y: 48.8455), (x: 2.357, y: 48.8455), (x: 2.357, y: 48.8545),
                (x: 2.343, y: 48.8545), (x: 2.343, y: 48.8455),
            ],
            interiors: [[
                (x: 2.3486, y: 48.8491), (x: 2.3514, y: 48.8491), (x: 2.3514, y: 48.8509),
                (x: 2.3486, y: 48.8509), (x: 2.3486, y: 48.8491),
            ]],
        );
        let corner = polygon![
            (x: 2.343, y: 48.8535), (x: 2.345, y: 48.8535), (x: 2.345, y: 48.8545),
            (x: 2.343, y: 48.8545), (x: 2.343, y: 48.8535),
        ];
        let south = polygon![
            (x: 2.340, y: 48.8450), (x: 2.360, y: 48.8450), (x: 2.360, y: 48.8480),
            (x: 2.340, y: 48.8480), (x: 2.340, y: 48.8450),
        ];
        let slower = polygon![
            (x: 2.350, y: 48.8450), (x: 2.360, y: 48.8450), (x: 2.360, y: 48.8470),
            (x: 2.350, y: 48.8470), (x: 2.350, y: 48.8450),
        ];
        let zone = |kind, name: &str, p: Polygon<f64>| Zone {
            kind,
            name: Some(name.to_owned()),
            area: MultiPolygon(vec![p]),
        };
        ZoneSet::new(
            1,
            DateTime::UNIX_EPOCH,
            None,
            serde_json::json!({"type": "FeatureCollection", "features": []}),
            vec![
                zone(ZoneKind::ServiceArea, "square", square),
                zone(ZoneKind::NoParking, "corner", corner),
                zone(
                    ZoneKind::Slow {
                        max_speed_kmh: 15.0,
                    },
                    "south",
                    south,
                ),
                zone(ZoneKind::Slow { max_speed_kmh: 8.0 }, "south-east", slower),
            ],
        )
    }

    #[test]
    fn holes_are_outside_and_borders_inside() {
        let set = sample();
        assert!(set.in_service_area(48.8470, 2.3450));
        assert!(!set.in_service_area(48.8500, 2.3500), "the hole");
        assert!(set.in_service_area(48.8491, 2.3500), "the hole's border");
        assert!(set.in_service_area(48.8455, 2.3500), "the outer border");
        assert!(!set.in_service_area(48.8440, 2.3500));
        assert!(!set.in_service_area(f64::NAN, 2.35));
        assert!(!set.in_service_area(48.85, 200.0));
    }

    #[test]
    fn slow_zones_give_the_lowest_limit() {
        let set = sample();
        assert_eq!(set.speed_limit_kmh(48.8475, 2.3450), Some(15.0));
        assert_eq!(set.speed_limit_kmh(48.8460, 2.3550), Some(8.0));
        assert_eq!(set.speed_limit_kmh(48.8520, 2.3450), None);
    }

    #[test]
    fn parking_tolerance_favours_the_rider_at_the_service_area_border() {
        let set = sample();
        // 10 m south of the southern border (48.8455): within 15 m, refused without tolerance.
        let lat = 48.8455 - 10.0 / METRES_PER_DEGREE;
        assert_eq!(set.parking_verdict(lat, 2.3500, 15.0), Ok(()));
        assert_eq!(
            set.parking_verdict(lat, 2.3500, 0.0),
            Err(ParkingRefusal::OutsideServiceArea)
        );
        // 20 m out is too far for 15 m.
        let lat = 48.8455 - 20.0 / METRES_PER_DEGREE;
        assert_eq!(
            set.parking_verdict(lat, 2.3500, 15.0),
            Err(ParkingRefusal::OutsideServiceArea)
        );
        // East border, measured in metres of longitude at this latitude (~73 km a degree).
        let metres_per_degree_lon = METRES_PER_DEGREE * 48.85_f64.to_radians().cos();
        let lon = 2.357 + 12.0 / metres_per_degree_lon;
        assert_eq!(set.parking_verdict(48.85, lon, 15.0), Ok(()));
        let lon = 2.357 + 18.0 / metres_per_degree_lon;
        assert!(set.parking_verdict(48.85, lon, 15.0).is_err());
        // 10 m inside the hole's border is 10 m outside the service area.
        let lat = 48.8491 + 10.0 / METRES_PER_DEGREE;
        assert_eq!(set.parking_verdict(lat, 2.3500, 15.0), Ok(()));
        assert!(
            set.parking_verdict(48.8500, 2.3500, 15.0).is_err(),
            "deep in the hole"
        );
    }

    #[test]
    fn no_parking_zones_are_not_relaxed() {
        let set = sample();
        assert_eq!(
            set.parking_verdict(48.8540, 2.3440, 15.0),
            Err(ParkingRefusal::NoParkingZone {
                name: Some("corner".into())
            })
        );
        // On its border, still refused; a few metres beyond it, accepted.
        assert!(set.parking_verdict(48.8535, 2.3440, 15.0).is_err());
        let lat = 48.8535 - 5.0 / METRES_PER_DEGREE;
        assert_eq!(set.parking_verdict(lat, 2.3440, 15.0), Ok(()));
        assert_eq!(
            set.parking_verdict(f64::NAN, 2.3440, 15.0),
            Err(ParkingRefusal::OutsideServiceArea)
        );
        let refusal = set.parking_verdict(48.8540, 2.3440, 15.0).unwrap_err();
        assert!(
            refusal.detail().contains("(corner)"),
            "{}",
            refusal.detail()
        );
    }

    #[test]
    fn hundreds_of_zones_are_looked_up_through_the_index() {
        let mut zones = Vec::new();
        for i in 0..30 {
            for j in 0..30 {
                let (x, y) = (2.25 + f64::from(i) * 0.007, 48.81 + f64::from(j) * 0.003);
                zones.push(Zone {
                    kind: ZoneKind::NoParking,
                    name: Some(format!("{i}-{j}")),
                    area: MultiPolygon(vec![polygon![
                        (x: x, y: y), (x: x + 0.001, y: y), (x: x + 0.001, y: y + 0.001),
                        (x: x, y: y + 0.001), (x: x, y: y),
                    ]]),
                });
            }
        }
        let set = ZoneSet::new(
            2,
            DateTime::UNIX_EPOCH,
            None,
            serde_json::Value::Null,
            zones,
        );
        let zone = set.no_parking_zone_at(48.8105, 2.2575).expect("a zone");
        assert_eq!(zone.name.as_deref(), Some("1-0"));
        assert!(set.no_parking_zone_at(48.8125, 2.2575).is_none());
        assert_eq!(set.polygons_at(2.2575, 48.8105).count(), 1);
    }
}
