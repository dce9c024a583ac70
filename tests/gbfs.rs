//! The public GBFS v3.0 feeds through HTTP on every backend: every feed listed in
//! `gbfs.json` validates against the official schema, references hold across files,
//! scooters on a trip are hidden and their public id changes after the rental.

mod common;

use std::collections::HashSet;

use common::fleet::{register, PARIS};
use common::gbfs::assert_valid;
use common::{backends, TestServer};
use scootfleet::clock::Clock;
use scootfleet::db::Backend;
use scootfleet::fleet::Event;
use serde_json::Value;

const PUBLIC_URL: &str = "https://gbfs.scootfleet.test/";

async fn start(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c| c.public_url = Some(PUBLIC_URL.into())).await
}

/// Fetches a feed by the absolute URL `gbfs.json` gives, checking its caching headers.
async fn fetch(s: &TestServer, url: &str) -> Value {
    let path = url
        .strip_prefix(PUBLIC_URL.trim_end_matches('/'))
        .unwrap_or_else(|| panic!("{url} is not under the public URL {PUBLIC_URL}"));
    let answer = s.get(path, None).await;
    let doc = answer.expect(200).clone();
    let ttl = doc["ttl"].as_u64().expect("ttl");
    assert_eq!(
        answer.headers["cache-control"].to_str().unwrap(),
        format!("public, max-age={ttl}"),
        "{path}"
    );
    let modified = answer.headers["last-modified"].to_str().unwrap();
    let updated = chrono::DateTime::parse_from_rfc3339(doc["last_updated"].as_str().unwrap())
        .expect("last_updated is RFC 3339");
    let modified = chrono::DateTime::parse_from_rfc2822(modified).expect("Last-Modified is a date");
    assert_eq!(modified.timestamp(), updated.timestamp(), "{path}");
    assert_eq!(answer.headers["access-control-allow-origin"], "*", "{path}");
    assert_eq!(doc["version"], "3.0");
    doc
}

async fn vehicle_ids(s: &TestServer) -> Vec<String> {
    let doc = s.get("/gbfs/v3/vehicle_status.json", None).await;
    doc.expect(200)["data"]["vehicles"]
        .as_array()
        .expect("vehicles")
        .iter()
        .map(|v| v["vehicle_id"].as_str().expect("vehicle_id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_feed_validates_and_references_hold() {
    for backend in backends() {
        eprintln!("on {backend:?}");
        let s = start(backend).await;
        let operator = s.operator_token().await;
        let (lat, lon) = PARIS;
        register(&s, &operator, "CS-0001", lat, lon, 30.0).await;
        register(&s, &operator, "CS-0002", lat + 0.002, lon, 12.0).await;
        register(&s, &operator, "CS-0003", lat, lon + 0.002, 45.0).await;
        // Below the rental floor: not rentable, so not published.
        register(&s, &operator, "CS-0004", lat - 0.002, lon, 2.0).await;

        let discovery = fetch(&s, &format!("{}gbfs/v3/gbfs.json", PUBLIC_URL)).await;
        assert_valid("gbfs", &discovery);
        let mut docs = std::collections::HashMap::new();
        for feed in discovery["data"]["feeds"].as_array().expect("feeds") {
            let name = feed["name"].as_str().expect("name");
            let doc = fetch(&s, feed["url"].as_str().expect("url")).await;
            assert_valid(name, &doc);
            docs.insert(name.to_owned(), doc);
        }
        for name in [
            "system_information",
            "vehicle_types",
            "vehicle_status",
            "geofencing_zones",
            "system_pricing_plans",
        ] {
            assert!(docs.contains_key(name), "gbfs.json does not list {name}");
        }

        let info = &docs["system_information"]["data"];
        assert_eq!(info["opening_hours"], "Mo-Su 07:00-23:00");
        assert_eq!(info["timezone"], "Europe/Paris");

        let types: HashSet<&str> = docs["vehicle_types"]["data"]["vehicle_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["vehicle_type_id"].as_str().unwrap())
            .collect();
        let plans: HashSet<&str> = docs["system_pricing_plans"]["data"]["plans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["plan_id"].as_str().unwrap())
            .collect();
        for vehicle_type in docs["vehicle_types"]["data"]["vehicle_types"]
            .as_array()
            .unwrap()
        {
            assert_eq!(vehicle_type["form_factor"], "moped");
            assert_eq!(vehicle_type["propulsion_type"], "electric");
            assert!(plans.contains(vehicle_type["default_pricing_plan_id"].as_str().unwrap()));
        }
        let plan = &docs["system_pricing_plans"]["data"]["plans"][0];
        assert_eq!(plan["per_min_pricing"][0]["rate"], 0.28);

        let vehicles = docs["vehicle_status"]["data"]["vehicles"]
            .as_array()
            .unwrap();
        assert_eq!(vehicles.len(), 3, "{vehicles:#?}");
        let mut ranges: Vec<f64> = Vec::new();
        for vehicle in vehicles {
            let id = vehicle["vehicle_id"].as_str().unwrap();
            assert!(!id.contains("CS-"), "the fleet code leaked: {id}");
            assert!(types.contains(vehicle["vehicle_type_id"].as_str().unwrap()));
            assert!(plans.contains(vehicle["pricing_plan_id"].as_str().unwrap()));
            ranges.push(vehicle["current_range_meters"].as_f64().unwrap());
        }
        ranges.sort_by(f64::total_cmp);
        assert_eq!(ranges, vec![12_000.0, 30_000.0, 45_000.0]);

        let zones = &docs["geofencing_zones"]["data"];
        assert_eq!(zones["global_rules"][0]["ride_start_allowed"], false);
        assert_eq!(zones["global_rules"][0]["ride_end_allowed"], false);
        assert!(!zones["geofencing_zones"]["features"]
            .as_array()
            .unwrap()
            .is_empty());
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scooters_on_a_trip_are_hidden_and_get_a_new_id_after() {
    for backend in backends() {
        eprintln!("on {backend:?}");
        let s = start(backend).await;
        let operator = s.operator_token().await;
        let (lat, lon) = PARIS;
        register(&s, &operator, "CS-0001", lat, lon, 30.0).await;
        register(&s, &operator, "CS-0002", lat + 0.002, lon, 30.0).await;
        let before = vehicle_ids(&s).await;
        assert_eq!(before.len(), 2);
        assert_eq!(
            vehicle_ids(&s).await,
            before,
            "ids are stable between fetches"
        );

        let now = s.clock.now();
        let fleet = &s.state.fleet;
        fleet
            .change_state(&s.state.db, "CS-0001", Event::TripStart, now)
            .await
            .expect("trip starts");
        let riding = vehicle_ids(&s).await;
        assert_eq!(riding.len(), 1, "a scooter on a trip is not published");
        fleet
            .change_state(&s.state.db, "CS-0001", Event::TripEnd, now)
            .await
            .expect("trip ends");

        let after = vehicle_ids(&s).await;
        assert_eq!(after.len(), 2);
        assert_eq!(
            after.iter().filter(|id| !before.contains(id)).count(),
            1,
            "a new id after the rental"
        );
        let kept: Vec<&String> = after.iter().filter(|id| before.contains(id)).collect();
        assert_eq!(kept, vec![&riding[0]], "the other scooter keeps its id");

        // A reservation is published as reserved, under the same id.
        fleet
            .change_state(&s.state.db, "CS-0002", Event::ReservationStart, now)
            .await
            .expect("reserved");
        let doc = s.get("/gbfs/v3/vehicle_status.json", None).await;
        let vehicles = doc.expect(200)["data"]["vehicles"]
            .as_array()
            .unwrap()
            .clone();
        let reserved: Vec<&Value> = vehicles
            .iter()
            .filter(|v| v["is_reserved"] == true)
            .collect();
        assert_eq!(reserved.len(), 1);
        assert_eq!(reserved[0]["vehicle_id"], riding[0].as_str());
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_service_publishes_no_rentable_scooter() {
    let s = start(Backend::Sqlite).await;
    let operator = s.operator_token().await;
    register(&s, &operator, "CS-0001", PARIS.0, PARIS.1, 30.0).await;
    assert_eq!(vehicle_ids(&s).await.len(), 1);
    // 23:30 in Paris: the service is closed.
    s.clock.set(common::at("2026-11-23T22:30:00Z"));
    assert_eq!(vehicle_ids(&s).await.len(), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gbfs_urls_default_to_the_bind_address() {
    let s = TestServer::start(Backend::Sqlite).await;
    let doc = s.get("/gbfs/v3/gbfs.json", None).await;
    let bind = s.state.config.bind;
    for feed in doc.expect(200)["data"]["feeds"].as_array().unwrap() {
        let url = feed["url"].as_str().unwrap();
        assert!(url.starts_with(&format!("http://{bind}/gbfs/v3/")), "{url}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_zones_become_geofencing_rules() {
    for backend in backends() {
        eprintln!("on {backend:?}");
        let s = start(backend).await;
        let operator = s.operator_token().await;
        // A service area with a hole, a no-parking square and a nameless slow zone.
        let zones = serde_json::json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"kind": "service_area", "name": "Town"},
             "geometry": {"type": "Polygon", "coordinates": [
                [[2.30, 48.80], [2.40, 48.80], [2.40, 48.90], [2.30, 48.90], [2.30, 48.80]],
                [[2.34, 48.84], [2.34, 48.85], [2.35, 48.85], [2.35, 48.84], [2.34, 48.84]]]}},
            {"type": "Feature", "properties": {"kind": "no_parking", "name": "Square"},
             "geometry": {"type": "Polygon", "coordinates": [
                [[2.31, 48.81], [2.32, 48.81], [2.32, 48.82], [2.31, 48.82], [2.31, 48.81]]]}},
            {"type": "Feature", "properties": {"kind": "slow", "max_speed_kmh": 12},
             "geometry": {"type": "MultiPolygon", "coordinates": [
                [[[2.36, 48.86], [2.37, 48.86], [2.37, 48.87], [2.36, 48.87], [2.36, 48.86]]]]}}
        ]});
        s.clock.advance(chrono::Duration::minutes(5));
        s.put("/v1/ops/zones", Some(&operator), zones)
            .await
            .expect(200);

        let doc = fetch(&s, &format!("{PUBLIC_URL}gbfs/v3/geofencing_zones.json")).await;
        assert_valid("geofencing_zones", &doc);
        assert_eq!(
            doc["last_updated"],
            scootfleet::clock::rfc3339(s.clock.now()),
            "last_updated is when the zones were uploaded"
        );
        let features = doc["data"]["geofencing_zones"]["features"]
            .as_array()
            .unwrap();
        assert_eq!(features.len(), 3);
        let rules: Vec<&Value> = features
            .iter()
            .map(|f| &f["properties"]["rules"][0])
            .collect();
        // Most specific first: no parking, then slow, then the service area.
        assert_eq!(rules[0]["ride_end_allowed"], false);
        assert_eq!(rules[0]["ride_start_allowed"], true);
        assert_eq!(rules[1]["maximum_speed_kph"], 12);
        assert_eq!(rules[2]["ride_start_allowed"], true);
        assert_eq!(
            features[2]["geometry"]["coordinates"][0]
                .as_array()
                .unwrap()
                .len(),
            2,
            "the hole is kept"
        );
        s.stop().await;
    }
}
