//! Operating hours: the daily window, in the operator's time zone, when rides may start.
//!
//! "Open" means the local wall clock reads a time in `[open, close)`. A `close` before
//! `open` crosses midnight (22:00–02:00); `00:00`–`24:00` is all day. Because the rule is
//! about the wall clock, it holds across daylight-saving changes: on 29 March 2026 Paris
//! still opens at 07:00 local, which is 05:00 UTC instead of 06:00 the day before.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use tokio::sync::watch;

/// A time of day to the minute, from `00:00` to `24:00` (the end of the day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub const MIDNIGHT: TimeOfDay = TimeOfDay(0);
    pub const END_OF_DAY: TimeOfDay = TimeOfDay(24 * 60);

    /// Reads `HH:MM` (two digits each), `00:00` to `24:00`.
    pub fn parse(text: &str) -> Option<Self> {
        let (h, m) = text.split_once(':')?;
        if h.len() != 2 || m.len() != 2 || !(h.chars().chain(m.chars())).all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        let minutes = h * 60 + m;
        (h <= 24 && m < 60 && minutes <= 24 * 60).then_some(TimeOfDay(minutes))
    }

    /// Minutes since midnight, 0 to 1440.
    pub fn minutes(self) -> u16 {
        self.0
    }

    pub fn from_minutes(minutes: u16) -> Option<Self> {
        (minutes <= 24 * 60).then_some(TimeOfDay(minutes))
    }

    fn seconds(self) -> u32 {
        u32::from(self.0) * 60
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// Why hours are refused: a sentence for the operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHours(pub String);

/// When the service runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatingHours {
    pub timezone: Tz,
    pub open: TimeOfDay,
    pub close: TimeOfDay,
}

impl Default for OperatingHours {
    /// 07:00 to 23:00, Paris time.
    fn default() -> Self {
        Self {
            timezone: chrono_tz::Europe::Paris,
            open: TimeOfDay(7 * 60),
            close: TimeOfDay(23 * 60),
        }
    }
}

impl OperatingHours {
    /// Hours from an IANA time zone name and two `HH:MM` times, checked.
    pub fn parse(timezone: &str, open: &str, close: &str) -> Result<Self, InvalidHours> {
        let tz: Tz = timezone.parse().map_err(|_| {
            InvalidHours(format!(
                "Unknown time zone {timezone:?}: use an IANA name such as \"Europe/Paris\"."
            ))
        })?;
        let time = |field: &str, text: &str| {
            TimeOfDay::parse(text).ok_or_else(|| {
                InvalidHours(format!(
                    "{field} must be a time of day written HH:MM, from 00:00 to 24:00, not {text:?}."
                ))
            })
        };
        Self::new(tz, time("open", open)?, time("close", close)?)
    }

    /// Hours from checked parts: opening before 24:00, and a window that is not empty.
    pub fn new(timezone: Tz, open: TimeOfDay, close: TimeOfDay) -> Result<Self, InvalidHours> {
        if open == TimeOfDay::END_OF_DAY {
            return Err(InvalidHours(
                "open must be before 24:00; use 00:00 for midnight.".into(),
            ));
        }
        if open == close {
            return Err(InvalidHours(format!(
                "open and close are both {open}: the service would never open. For all day, use 00:00 to 24:00."
            )));
        }
        Ok(Self {
            timezone,
            open,
            close,
        })
    }

    /// Open around the clock (`00:00`–`24:00`).
    pub fn is_all_day(&self) -> bool {
        self.open == TimeOfDay::MIDNIGHT && self.close == TimeOfDay::END_OF_DAY
    }

    /// Whether the service is open at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.timezone);
        let second = local.num_seconds_from_midnight();
        let (open, close) = (self.open.seconds(), self.close.seconds());
        if open < close {
            open <= second && second < close
        } else {
            second >= open || second < close
        }
    }

    /// The next instant after `now` at which the service opens or closes; `None` when it
    /// is open all day.
    ///
    /// The wall clock crosses `open` or `close` once a day, or not at all when that time
    /// falls in a spring-forward gap (the change then happens when the gap ends), or twice
    /// when it falls in an autumn repeat; it can also jump across them at a
    /// daylight-saving change. Every such instant around `now` is a candidate, and the
    /// first one at which `is_open` differs from now is the answer.
    pub fn next_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_all_day() {
            return None;
        }
        let tz = self.timezone;
        let today = now.with_timezone(&tz).date_naive();
        let mut candidates = Vec::new();
        for day in -1..=2 {
            let midnight = (today + Duration::days(day)).and_time(chrono::NaiveTime::MIN);
            for time in [self.open, self.close] {
                let wall = midnight + Duration::minutes(i64::from(time.minutes()));
                candidates.extend(instants_reading(tz, wall));
            }
            let start = now + Duration::days(day);
            candidates.extend(offset_change_between(tz, start, start + Duration::days(1)));
        }
        candidates.sort_unstable();
        let open_now = self.is_open(now);
        candidates
            .into_iter()
            .filter(|at| *at > now)
            .find(|at| self.is_open(*at) != open_now)
    }

    /// The hours in OpenStreetMap `opening_hours` syntax, as GBFS asks
    /// (`"Mo-Su 07:00-23:00"`, `"24/7"`). The time zone is given separately there.
    pub fn opening_hours_osm(&self) -> String {
        if self.is_all_day() {
            return "24/7".into();
        }
        let close = match self.close {
            TimeOfDay::MIDNIGHT => TimeOfDay::END_OF_DAY,
            close => close,
        };
        format!("Mo-Su {}-{}", self.open, close)
    }
}

/// The instants at which the wall clock of `tz` reads `wall`: one, two in an autumn repeat,
/// or, in a spring-forward gap, the instant the gap ends.
fn instants_reading(tz: Tz, wall: NaiveDateTime) -> Vec<DateTime<Utc>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(at) => vec![at.with_timezone(&Utc)],
        LocalResult::Ambiguous(first, second) => {
            vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
        }
        // Gaps are whole minutes in every zone in use and last at most a few hours.
        LocalResult::None => (1..=24 * 60)
            .map(|m| wall + Duration::minutes(m))
            .find_map(|later| tz.from_local_datetime(&later).earliest())
            .map(|at| at.with_timezone(&Utc))
            .into_iter()
            .collect(),
    }
}

/// The instant in `[start, end)` at which `tz` changes its UTC offset, if it does (at most
/// once a day in every zone in use).
fn offset_change_between(
    tz: Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let offset = |at: DateTime<Utc>| tz.offset_from_utc_datetime(&at.naive_utc()).fix();
    let before = offset(start);
    if offset(end) == before {
        return None;
    }
    let (mut low, mut high) = (start, end);
    while high - low > Duration::seconds(1) {
        let middle = low + (high - low) / 2;
        if offset(middle) == before {
            low = middle;
        } else {
            high = middle;
        }
    }
    Some(high.with_nanosecond(0).unwrap_or(high))
}

/// The hours in force, shared by every request and worker; a change wakes subscribers.
pub struct Hours {
    current: watch::Sender<OperatingHours>,
    /// The stored version in force (0 for the built-in default), so two changes finishing
    /// out of order cannot bring back the older one.
    version: Mutex<i64>,
}

impl Hours {
    pub fn new(version: i64, hours: OperatingHours) -> Self {
        Self {
            current: watch::Sender::new(hours),
            version: Mutex::new(version),
        }
    }

    pub fn current(&self) -> OperatingHours {
        self.current.borrow().clone()
    }

    /// The stored version in force; 0 for the built-in default.
    pub fn version(&self) -> i64 {
        *self.version.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `hours`, stored as `version`, in force unless a newer version already is.
    pub fn replace(&self, version: i64, hours: OperatingHours) {
        let mut in_force = self.version.lock().unwrap_or_else(PoisonError::into_inner);
        if version > *in_force {
            *in_force = version;
            self.current.send_replace(hours);
        }
    }

    /// A receiver that wakes whenever the hours change, so a worker can reschedule.
    pub fn subscribe(&self) -> watch::Receiver<OperatingHours> {
        self.current.subscribe()
    }

    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.current.borrow().is_open(now)
    }

    pub fn next_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.current.borrow().next_change(now)
    }
}

#[cfg(test)]
mod tests;
