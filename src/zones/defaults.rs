//! The zones in force until an operator uploads others: Paris and Neuilly-sur-Seine.
//!
//! `fixtures/zones/paris-neuilly.geojson` was drawn for this project: one service area
//! following the city limits of Paris (around the Boulevard Périphérique, with the Bois de
//! Boulogne and the Bois de Vincennes) and of Neuilly-sur-Seine, simplified to about 10 m;
//! the Paris limit was checked against the arrondissement boundaries published by the City
//! of Paris (opendata.paris.fr, ODbL). Plus no-parking zones at the busiest squares and
//! landmarks, and slow zones on the Champs-Élysées and Rue Mouffetard.

/// The default FeatureCollection, compiled into the binary.
const PARIS_NEUILLY: &str = include_str!("../../fixtures/zones/paris-neuilly.geojson");

/// The default zones as GeoJSON (the tests below prove the fixture parses and is right).
pub fn default_feature_collection() -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_str(PARIS_NEUILLY)
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::zones::{parse_zones, ParkingRefusal, ZoneSet};

    fn paris() -> ZoneSet {
        let collection = default_feature_collection().expect("JSON");
        let zones = parse_zones(&collection).expect("the fixture is a valid zone set");
        ZoneSet::new(1, DateTime::UNIX_EPOCH, None, collection, zones)
    }

    #[test]
    fn the_service_area_follows_paris_and_neuilly_with_enough_detail() {
        let set = paris();
        let vertices: usize = set
            .zones()
            .iter()
            .filter(|zone| zone.kind == crate::zones::ZoneKind::ServiceArea)
            .map(|zone| {
                zone.area
                    .0
                    .iter()
                    .map(|p| p.exterior().0.len())
                    .sum::<usize>()
            })
            .sum();
        assert!((80..=150).contains(&vertices), "{vertices} vertices");
    }

    #[test]
    fn known_places_inside() {
        let set = paris();
        for (place, lat, lon) in [
            ("Notre-Dame", 48.8530, 2.3499),
            ("Eiffel Tower", 48.8584, 2.2945),
            ("Tour Montparnasse", 48.8421, 2.3219),
            ("Gare du Nord", 48.8809, 2.3553),
            ("Bois de Vincennes, Lac des Minimes", 48.8380, 2.4530),
            ("Bois de Vincennes, Parc floral", 48.8380, 2.4430),
            ("Bois de Boulogne, Roland-Garros", 48.8475, 2.2490),
            ("Bois de Boulogne, Longchamp", 48.8590, 2.2330),
            ("Neuilly-sur-Seine town hall", 48.8846, 2.2695),
            ("Porte Maillot", 48.8781, 2.2830),
            ("Parc de la Villette", 48.8938, 2.3904),
            ("Cité internationale universitaire", 48.8196, 2.3383),
        ] {
            assert!(set.in_service_area(lat, lon), "{place} should be inside");
        }
    }

    #[test]
    fn known_places_outside() {
        let set = paris();
        for (place, lat, lon) in [
            ("La Défense", 48.8920, 2.2380),
            ("Saint-Denis, Stade de France", 48.9245, 2.3602),
            ("Boulogne-Billancourt centre", 48.8353, 2.2407),
            ("Montreuil", 48.8620, 2.4420),
            ("Issy-les-Moulineaux centre", 48.8237, 2.2730),
            ("Levallois-Perret centre", 48.8930, 2.2876),
            ("Château de Vincennes", 48.8427, 2.4359),
            ("Saint-Ouen flea market", 48.9020, 2.3420),
            ("Charenton-le-Pont", 48.8217, 2.4133),
            ("Saint-Mandé, south", 48.8400, 2.4170),
            ("Boulogne-Billancourt, north", 48.8480, 2.2350),
            ("Ivry-sur-Seine, north", 48.8200, 2.3850),
            ("Clichy", 48.9040, 2.3060),
        ] {
            assert!(!set.in_service_area(lat, lon), "{place} should be outside");
        }
    }

    #[test]
    fn landmarks_are_no_parking_and_the_champs_elysees_slow() {
        let set = paris();
        for (place, lat, lon) in [
            ("Arc de Triomphe", 48.8738, 2.2950),
            ("Place de la Concorde", 48.8656, 2.3212),
            ("Eiffel Tower", 48.8584, 2.2945),
        ] {
            assert!(
                matches!(
                    set.parking_verdict(lat, lon, 15.0),
                    Err(ParkingRefusal::NoParkingZone { .. })
                ),
                "{place} should be no-parking"
            );
        }
        assert_eq!(
            set.parking_verdict(48.8530, 2.3499, 15.0),
            Ok(()),
            "Notre-Dame"
        );
        assert_eq!(
            set.speed_limit_kmh(48.8698, 2.3077),
            Some(10.0),
            "Champs-Élysées"
        );
        assert_eq!(set.speed_limit_kmh(48.8530, 2.3499), None);
    }
}
