//! Reading an operator's GeoJSON FeatureCollection into zones, refusing anything doubtful
//! with a sentence that says which feature is wrong and why.

use geo::{Coord, LineString, MultiPolygon, Polygon, Validation};
use geojson::{Feature, PolygonType, Position};
use serde_json::Value;

use super::set::{is_valid_position, Zone, ZoneKind};

/// Highest `max_speed_kmh` a slow zone may ask for; anything above is no slow zone.
pub const MAX_SLOW_SPEED_KMH: f64 = 100.0;

/// Why a FeatureCollection cannot become a zone set: a sentence for the operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidZones(pub String);

/// The zones of a GeoJSON FeatureCollection.
///
/// Each feature is a `Polygon` or `MultiPolygon` (holes allowed) whose `properties.kind`
/// is `service_area`, `no_parking` or `slow` (with a positive `max_speed_kmh`); rings are
/// closed, have at least four positions, stay within WGS84 ranges and do not cross
/// themselves. At least one service area is required. Members GeoJSON does not define
/// (`name`, `id`, foreign members) are allowed and ignored.
pub fn parse_zones(collection: &Value) -> Result<Vec<Zone>, InvalidZones> {
    let invalid = |detail: String| Err(InvalidZones(detail));
    let Some(object) = collection.as_object() else {
        return invalid("The zone set must be a GeoJSON FeatureCollection object.".into());
    };
    match object.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => {}
        Some(other) => {
            return invalid(format!(
                "The zone set must be a GeoJSON FeatureCollection, not a {other}."
            ))
        }
        None => {
            return invalid(
                "The zone set must be a GeoJSON FeatureCollection: \"type\": \"FeatureCollection\" is missing.".into(),
            )
        }
    }
    let Some(features) = object.get("features").and_then(Value::as_array) else {
        return invalid("The FeatureCollection needs a \"features\" array.".into());
    };
    let zones = features
        .iter()
        .enumerate()
        .map(|(index, feature)| {
            parse_feature(feature).map_err(|why| InvalidZones(format!("features[{index}]{why}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !zones.iter().any(|zone| zone.kind == ZoneKind::ServiceArea) {
        return invalid(
            "The zone set has no feature of kind service_area: riders could ride nowhere.".into(),
        );
    }
    Ok(zones)
}

/// One feature; the error is the rest of a sentence starting with `features[i]`.
fn parse_feature(value: &Value) -> Result<Zone, String> {
    let feature = Feature::from_json_value(value.clone())
        .map_err(|err| format!(" is not a valid GeoJSON Feature: {err}."))?;
    let name = feature
        .property("name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let label = match &name {
        Some(name) => format!(" ({name:?})"),
        None => String::new(),
    };
    let kind = parse_kind(&feature).map_err(|why| format!("{label}: {why}"))?;
    let Some(geometry) = &feature.geometry else {
        return Err(format!(
            "{label} has no geometry; a zone needs a Polygon or MultiPolygon."
        ));
    };
    let polygons: Vec<&PolygonType> = match &geometry.value {
        geojson::Value::Polygon(polygon) => vec![polygon],
        geojson::Value::MultiPolygon(polygons) => polygons.iter().collect(),
        other => {
            return Err(format!(
                "{label} is a {}; a zone must be a Polygon or MultiPolygon.",
                other.type_name()
            ))
        }
    };
    if polygons.is_empty() {
        return Err(format!("{label} is an empty MultiPolygon."));
    }
    let area = polygons
        .into_iter()
        .enumerate()
        .map(|(p, rings)| {
            parse_polygon(rings).map_err(|why| match &geometry.value {
                geojson::Value::MultiPolygon(_) => format!("{label}, polygon {p}: {why}"),
                _ => format!("{label}: {why}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let area = MultiPolygon(area);
    if area.0.len() > 1 {
        area.check_validation()
            .map_err(|err| format!("{label}: the MultiPolygon is not valid: {err}."))?;
    }
    Ok(Zone { kind, name, area })
}

fn parse_kind(feature: &Feature) -> Result<ZoneKind, String> {
    const KINDS: &str = "service_area, no_parking or slow";
    let kind = match feature.property("kind") {
        None | Some(Value::Null) => {
            return Err(format!("properties.kind is missing; it must be {KINDS}."))
        }
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => {
            return Err(format!(
                "properties.kind must be a string ({KINDS}), not {other}."
            ))
        }
    };
    match kind {
        "service_area" => Ok(ZoneKind::ServiceArea),
        "no_parking" => Ok(ZoneKind::NoParking),
        "slow" => {
            let speed = feature.property("max_speed_kmh");
            match speed.and_then(Value::as_f64) {
                Some(max_speed_kmh) if max_speed_kmh > 0.0 && max_speed_kmh <= MAX_SLOW_SPEED_KMH => {
                    Ok(ZoneKind::Slow { max_speed_kmh })
                }
                Some(_) => Err(format!(
                    "properties.max_speed_kmh must be above 0 and at most {MAX_SLOW_SPEED_KMH} km/h."
                )),
                None if matches!(speed, None | Some(Value::Null)) => {
                    Err("a slow zone needs properties.max_speed_kmh, its speed limit in km/h.".into())
                }
                None => Err("properties.max_speed_kmh must be a number of km/h.".into()),
            }
        }
        other => Err(format!(
            "unknown kind {other:?}; properties.kind must be {KINDS}."
        )),
    }
}

fn parse_polygon(rings: &PolygonType) -> Result<Polygon<f64>, String> {
    let Some((exterior, interiors)) = rings.split_first() else {
        return Err("the polygon has no rings.".into());
    };
    let ring_name = |r: usize| match r {
        0 => "the outer ring".to_owned(),
        r => format!("hole {r}"),
    };
    let exterior = parse_ring(exterior).map_err(|why| format!("{} {why}", ring_name(0)))?;
    let interiors = interiors
        .iter()
        .enumerate()
        .map(|(r, ring)| parse_ring(ring).map_err(|why| format!("{} {why}", ring_name(r + 1))))
        .collect::<Result<Vec<_>, _>>()?;
    let polygon = Polygon::new(exterior, interiors);
    polygon
        .check_validation()
        .map_err(|err| format!("the polygon is not valid: {err}."))?;
    Ok(polygon)
}

fn parse_ring(positions: &[Position]) -> Result<LineString<f64>, String> {
    if positions.len() < 4 {
        return Err(format!(
            "has {} positions; a closed ring needs at least 4 (the first repeated at the end).",
            positions.len()
        ));
    }
    let coords = positions
        .iter()
        .enumerate()
        .map(|(i, position)| {
            let (lon, lat) = (position[0], position[1]);
            if position.len() > 3 {
                return Err(format!(
                    "has {} numbers at position {i}; a position is [longitude, latitude] or [longitude, latitude, altitude].",
                    position.len()
                ));
            }
            if !is_valid_position(lat, lon) {
                return Err(format!(
                    "has an out-of-range coordinate at position {i}: [{lon}, {lat}]; longitude must be within -180..180 and latitude within -90..90."
                ));
            }
            Ok(Coord { x: lon, y: lat })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (first, last) = (coords[0], coords[coords.len() - 1]);
    if first != last {
        return Err(format!(
            "is not closed: its first position [{}, {}] and its last [{}, {}] must be the same.",
            first.x, first.y, last.x, last.y
        ));
    }
    Ok(LineString(coords))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn square(lon: f64, lat: f64, size: f64) -> Value {
        json!([[
            [lon, lat],
            [lon + size, lat],
            [lon + size, lat + size],
            [lon, lat + size],
            [lon, lat]
        ]])
    }

    fn collection(features: Vec<Value>) -> Value {
        json!({"type": "FeatureCollection", "features": features})
    }

    fn feature(properties: Value, geometry: Value) -> Value {
        json!({"type": "Feature", "properties": properties, "geometry": geometry})
    }

    fn service_area() -> Value {
        feature(
            json!({"kind": "service_area", "name": "town"}),
            json!({"type": "Polygon", "coordinates": square(2.3, 48.8, 0.1)}),
        )
    }

    fn refusal(features: Vec<Value>) -> String {
        parse_zones(&collection(features)).expect_err("refused").0
    }

    #[test]
    fn reads_every_kind_with_holes_and_multipolygons() {
        let mut with_hole = square(2.3, 48.8, 0.1);
        with_hole.as_array_mut().unwrap().push(json!([
            [2.32, 48.82],
            [2.32, 48.83],
            [2.33, 48.83],
            [2.33, 48.82],
            [2.32, 48.82]
        ]));
        let two = json!([square(3.0, 48.0, 0.1), square(3.5, 48.0, 0.1)]);
        let zones = parse_zones(&json!({
            "type": "FeatureCollection",
            "name": "foreign member",
            "features": [
                feature(json!({"kind": "service_area"}), json!({"type": "Polygon", "coordinates": with_hole})),
                feature(json!({"kind": "service_area"}), json!({"type": "MultiPolygon", "coordinates": two})),
                feature(json!({"kind": "no_parking", "name": "square"}), json!({"type": "Polygon", "coordinates": square(2.31, 48.81, 0.001)})),
                feature(json!({"kind": "slow", "max_speed_kmh": 10}), json!({"type": "Polygon", "coordinates": square(2.34, 48.84, 0.01), "bbox": [2.34, 48.84, 2.35, 48.85]})),
            ]
        }))
        .expect("valid");
        assert_eq!(zones.len(), 4);
        assert_eq!(zones[0].area.0[0].interiors().len(), 1);
        assert_eq!(zones[1].area.0.len(), 2);
        assert_eq!(zones[2].name.as_deref(), Some("square"));
        assert_eq!(
            zones[3].kind,
            ZoneKind::Slow {
                max_speed_kmh: 10.0
            }
        );
    }

    #[test]
    fn says_which_ring_is_wrong_and_why() {
        let open = json!({"type": "Polygon", "coordinates": [[[2.3, 48.8], [2.4, 48.8], [2.4, 48.9], [2.3, 48.9]]]});
        let detail = refusal(vec![
            service_area(),
            feature(json!({"kind": "no_parking", "name": "x"}), open),
        ]);
        assert!(
            detail.starts_with("features[1] (\"x\"): the outer ring is not closed"),
            "{detail}"
        );

        let short =
            json!({"type": "Polygon", "coordinates": [[[2.3, 48.8], [2.4, 48.8], [2.3, 48.8]]]});
        let detail = refusal(vec![feature(json!({"kind": "service_area"}), short)]);
        assert!(
            detail.contains("features[0]: the outer ring has 3 positions"),
            "{detail}"
        );

        let far = json!({"type": "Polygon", "coordinates": [[[2.3, 48.8], [200.0, 48.8], [2.4, 48.9], [2.3, 48.8]]]});
        let detail = refusal(vec![feature(json!({"kind": "service_area"}), far)]);
        assert!(
            detail.contains("out-of-range coordinate at position 1: [200, 48.8]"),
            "{detail}"
        );

        let mut hole = square(2.3, 48.8, 0.1);
        hole.as_array_mut().unwrap().push(json!([
            [2.32, 48.82],
            [2.32, 48.83],
            [2.33, 48.83],
            [2.32, 48.82],
            [2.32, 48.821]
        ]));
        let detail = refusal(vec![feature(
            json!({"kind": "service_area"}),
            json!({"type": "Polygon", "coordinates": hole}),
        )]);
        assert!(detail.contains("hole 1 is not closed"), "{detail}");

        let bow_tie = json!({"type": "Polygon", "coordinates": [[[2.3, 48.8], [2.4, 48.9], [2.4, 48.8], [2.3, 48.9], [2.3, 48.8]]]});
        let detail = refusal(vec![feature(json!({"kind": "service_area"}), bow_tie)]);
        assert!(detail.contains("self-intersection"), "{detail}");
    }

    #[test]
    fn refuses_bad_kinds_speeds_geometries_and_sets() {
        let geometry = json!({"type": "Polygon", "coordinates": square(2.3, 48.8, 0.01)});
        let detail = refusal(vec![service_area(), feature(json!({}), geometry.clone())]);
        assert!(
            detail.contains("features[1]: properties.kind is missing"),
            "{detail}"
        );
        let detail = refusal(vec![
            service_area(),
            feature(json!({"kind": "parking"}), geometry.clone()),
        ]);
        assert!(detail.contains("unknown kind \"parking\""), "{detail}");
        let detail = refusal(vec![
            service_area(),
            feature(json!({"kind": "slow"}), geometry.clone()),
        ]);
        assert!(
            detail.contains("needs properties.max_speed_kmh"),
            "{detail}"
        );
        let detail = refusal(vec![
            service_area(),
            feature(
                json!({"kind": "slow", "max_speed_kmh": "10"}),
                geometry.clone(),
            ),
        ]);
        assert!(detail.contains("must be a number"), "{detail}");
        let detail = refusal(vec![
            service_area(),
            feature(
                json!({"kind": "slow", "max_speed_kmh": 0}),
                geometry.clone(),
            ),
        ]);
        assert!(detail.contains("above 0"), "{detail}");
        let line = json!({"type": "LineString", "coordinates": [[2.3, 48.8], [2.4, 48.8]]});
        let detail = refusal(vec![feature(json!({"kind": "service_area"}), line)]);
        assert!(
            detail.contains("is a LineString; a zone must be a Polygon or MultiPolygon"),
            "{detail}"
        );
        let detail = refusal(vec![feature(json!({"kind": "service_area"}), Value::Null)]);
        assert!(detail.contains("has no geometry"), "{detail}");
        let detail = refusal(vec![feature(json!({"kind": "no_parking"}), geometry)]);
        assert!(
            detail.contains("no feature of kind service_area"),
            "{detail}"
        );
        let detail = parse_zones(&json!({"type": "Feature"})).unwrap_err().0;
        assert!(detail.contains("not a Feature"), "{detail}");
        let detail = parse_zones(&json!([])).unwrap_err().0;
        assert!(detail.contains("FeatureCollection object"), "{detail}");
        let detail = refusal(vec![
            json!({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[2.3]]]}}),
        ]);
        assert!(
            detail.starts_with("features[0] is not a valid GeoJSON Feature"),
            "{detail}"
        );
    }
}
