//! The operator console's files and settings, served by the binary.

mod common;

use common::TestServer;
use scootfleet::db::Backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_built_console_with_deep_links() {
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(
        dist.path().join("index.html"),
        "<!doctype html><title>console</title>",
    )
    .unwrap();
    std::fs::create_dir(dist.path().join("assets")).unwrap();
    std::fs::write(dist.path().join("assets/app.js"), "console.log('hi')").unwrap();
    let dir = dist.path().to_path_buf();
    let s = TestServer::start_with(Backend::Sqlite, move |c| c.console_dir = dir).await;

    let index = s.get("/console/", None).await;
    assert_eq!(index.status, 200);
    assert!(index.text.contains("<title>console</title>"));
    let script = s.get("/console/assets/app.js", None).await;
    assert_eq!(script.status, 200);
    assert!(script.headers["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    // A reload on a console URL still gets the app.
    let deep = s.get("/console/scooters/CS-0042", None).await;
    assert!(deep.text.contains("<title>console</title>"));

    let config = s.get("/console/config.json", None).await;
    let config = config.expect(200);
    assert_eq!(config["basemap_url"], serde_json::Value::Null);
    assert_eq!(config["rental_floor_km"], 5.0);
    assert_eq!(config["swap_threshold_km"], 10.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn says_how_to_build_the_console_when_it_is_missing() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().join("dist");
    let s = TestServer::start_with(Backend::Sqlite, move |c| {
        c.console_dir = dir;
        c.basemap_url = Some("https://tiles.example.com/{z}/{x}/{y}.png".into());
    })
    .await;
    let page = s.get("/console", None).await;
    assert_eq!(page.status, 503);
    assert!(
        page.text.contains("npm install &amp;&amp; npm run build"),
        "{}",
        page.text
    );
    // The API itself is unaffected.
    s.get("/healthz", None).await.expect(200);
    let config = s.get("/console/config.json", None).await;
    assert_eq!(
        config.expect(200)["basemap_url"],
        "https://tiles.example.com/{z}/{x}/{y}.png"
    );
    s.stop().await;
}
