//! Operating hours at the edges: daylight-saving changes, midnight, all day.

use super::*;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("test time")
        .with_timezone(&Utc)
}

fn hours(open: &str, close: &str) -> OperatingHours {
    OperatingHours::parse("Europe/Paris", open, close).expect("valid hours")
}

#[test]
fn paris_default_is_seven_to_eleven() {
    let paris = OperatingHours::default();
    assert_eq!(paris, hours("07:00", "23:00"));
    assert_eq!(paris.opening_hours_osm(), "Mo-Su 07:00-23:00");
    // A Monday in November: CET, UTC+1.
    assert!(!paris.is_open(at("2026-11-23T05:59:59Z")));
    assert!(paris.is_open(at("2026-11-23T06:00:00Z")));
    assert!(paris.is_open(at("2026-11-23T21:59:59Z")));
    assert!(!paris.is_open(at("2026-11-23T22:00:00Z")));
}

#[test]
fn spring_forward_in_paris() {
    // 29 March 2026: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
    let paris = OperatingHours::default();
    assert!(!paris.is_open(at("2026-03-29T04:59:00Z")), "06:59 CEST");
    assert!(paris.is_open(at("2026-03-29T05:00:00Z")), "07:00 CEST");
    assert!(paris.is_open(at("2026-03-29T20:59:00Z")), "22:59 CEST");
    assert!(!paris.is_open(at("2026-03-29T21:00:00Z")), "23:00 CEST");
    // The day before, the same wall-clock times are an hour later in UTC.
    assert!(!paris.is_open(at("2026-03-28T05:59:00Z")), "06:59 CET");
    assert!(paris.is_open(at("2026-03-28T06:00:00Z")), "07:00 CET");
    assert!(!paris.is_open(at("2026-03-28T22:00:00Z")), "23:00 CET");

    assert_eq!(
        paris.next_change(at("2026-03-28T22:00:00Z")),
        Some(at("2026-03-29T05:00:00Z"))
    );
    assert_eq!(
        paris.next_change(at("2026-03-29T00:30:00Z")),
        Some(at("2026-03-29T05:00:00Z"))
    );
    assert_eq!(
        paris.next_change(at("2026-03-29T05:00:00Z")),
        Some(at("2026-03-29T21:00:00Z"))
    );
}

#[test]
fn fall_back_in_paris() {
    // 25 October 2026: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
    let paris = OperatingHours::default();
    assert!(!paris.is_open(at("2026-10-25T05:59:00Z")), "06:59 CET");
    assert!(paris.is_open(at("2026-10-25T06:00:00Z")), "07:00 CET");
    assert!(paris.is_open(at("2026-10-25T21:59:00Z")), "22:59 CET");
    assert!(!paris.is_open(at("2026-10-25T22:00:00Z")), "23:00 CET");
    assert!(
        !paris.is_open(at("2026-10-24T21:00:00Z")),
        "23:00 CEST the day before"
    );

    assert_eq!(
        paris.next_change(at("2026-10-24T21:00:00Z")),
        Some(at("2026-10-25T06:00:00Z"))
    );
    assert_eq!(
        paris.next_change(at("2026-10-25T06:00:00Z")),
        Some(at("2026-10-25T22:00:00Z"))
    );
}

#[test]
fn windows_crossing_midnight() {
    let night = hours("22:00", "02:00");
    assert_eq!(night.opening_hours_osm(), "Mo-Su 22:00-02:00");
    assert!(!night.is_open(at("2026-11-23T20:59:59Z")), "21:59");
    assert!(night.is_open(at("2026-11-23T21:00:00Z")), "22:00");
    assert!(night.is_open(at("2026-11-23T23:30:00Z")), "00:30");
    assert!(night.is_open(at("2026-11-24T00:59:59Z")), "01:59:59");
    assert!(!night.is_open(at("2026-11-24T01:00:00Z")), "02:00");
    assert_eq!(
        night.next_change(at("2026-11-23T12:00:00Z")),
        Some(at("2026-11-23T21:00:00Z"))
    );
    assert_eq!(
        night.next_change(at("2026-11-23T21:00:00Z")),
        Some(at("2026-11-24T01:00:00Z"))
    );

    // Closing at 02:30 on 29 March, a time that does not exist: the clock jumps from
    // 01:59:59 CET to 03:00 CEST, and the service closes then.
    let late = hours("22:00", "02:30");
    assert!(late.is_open(at("2026-03-29T00:59:59Z")));
    assert!(!late.is_open(at("2026-03-29T01:00:00Z")));
    assert_eq!(
        late.next_change(at("2026-03-28T23:00:00Z")),
        Some(at("2026-03-29T01:00:00Z"))
    );

    // Closing at midnight is the same as closing at 24:00.
    let evening = hours("07:00", "00:00");
    assert_eq!(evening.opening_hours_osm(), "Mo-Su 07:00-24:00");
    assert!(evening.is_open(at("2026-11-23T22:59:59Z")));
    assert!(!evening.is_open(at("2026-11-23T23:00:00Z")));
    assert_eq!(
        evening.next_change(at("2026-11-23T12:00:00Z")),
        Some(at("2026-11-23T23:00:00Z"))
    );
}

#[test]
fn the_wall_clock_rules_in_the_repeated_hour() {
    // 25 October 2026, open 01:00–02:30: 02:30 CEST closes (00:30 UTC); at 01:00 UTC the
    // clock goes back to 02:00 CET, inside the window again, until 02:30 CET (01:30 UTC).
    let small = hours("01:00", "02:30");
    assert!(small.is_open(at("2026-10-25T00:29:59Z")));
    assert_eq!(
        small.next_change(at("2026-10-25T00:00:00Z")),
        Some(at("2026-10-25T00:30:00Z"))
    );
    assert_eq!(
        small.next_change(at("2026-10-25T00:30:00Z")),
        Some(at("2026-10-25T01:00:00Z"))
    );
    assert!(small.is_open(at("2026-10-25T01:00:00Z")));
    assert_eq!(
        small.next_change(at("2026-10-25T01:00:00Z")),
        Some(at("2026-10-25T01:30:00Z"))
    );
}

#[test]
fn all_day_never_changes() {
    let always = hours("00:00", "24:00");
    assert!(always.is_all_day());
    assert_eq!(always.opening_hours_osm(), "24/7");
    for t in [
        "2026-03-29T01:00:00Z",
        "2026-10-25T01:30:00Z",
        "2026-11-23T23:59:59Z",
    ] {
        assert!(always.is_open(at(t)), "{t}");
        assert_eq!(always.next_change(at(t)), None);
    }
}

#[test]
fn other_time_zones() {
    let new_york = OperatingHours::parse("America/New_York", "07:00", "23:00").expect("valid");
    // 8 March 2026, 02:00 EST becomes 03:00 EDT.
    assert!(!new_york.is_open(at("2026-03-08T10:59:00Z")), "06:59 EDT");
    assert!(new_york.is_open(at("2026-03-08T11:00:00Z")), "07:00 EDT");
    assert_eq!(
        new_york.next_change(at("2026-03-08T04:00:00Z")),
        Some(at("2026-03-08T11:00:00Z"))
    );
}

#[test]
fn refuses_bad_hours() {
    for (tz, open, close, says) in [
        ("Europe/Paris", "07:00", "07:00", "never open"),
        ("Europe/Paris", "00:00", "00:00", "never open"),
        ("Europe/Atlantis", "07:00", "23:00", "Unknown time zone"),
        ("Europe/Paris", "7:00", "23:00", "HH:MM"),
        ("Europe/Paris", "07:00", "23:60", "HH:MM"),
        ("Europe/Paris", "07:00", "24:01", "HH:MM"),
        ("Europe/Paris", "25:00", "23:00", "HH:MM"),
        ("Europe/Paris", "07h00", "23:00", "HH:MM"),
        ("Europe/Paris", "+7:00", "23:00", "HH:MM"),
        ("Europe/Paris", "24:00", "23:00", "before 24:00"),
    ] {
        let err = OperatingHours::parse(tz, open, close).expect_err(open);
        assert!(err.0.contains(says), "{tz} {open} {close}: {err}");
    }
}
