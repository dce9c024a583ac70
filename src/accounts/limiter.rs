//! Failed-login throttling, per account and per client address.
//!
//! Fixed windows kept in memory: each server process counts its own failures, which bounds
//! guessing to the limit times the number of processes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::config::Config;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: DateTime<Utc>,
    failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

/// Counts failed logins and says when to refuse further attempts.
#[derive(Debug)]
pub struct LoginLimiter {
    per_account: u32,
    per_address: u32,
    window: chrono::Duration,
    windows: Mutex<HashMap<Key, Window>>,
}

/// Above this many tracked keys, expired windows are swept.
const SWEEP_ABOVE: usize = 10_000;

impl LoginLimiter {
    pub fn new(config: &Config) -> Self {
        Self::with_limits(
            config.login_max_failures_per_account,
            config.login_max_failures_per_address,
            chrono::Duration::seconds(config.login_window_secs as i64),
        )
    }

    pub fn with_limits(per_account: u32, per_address: u32, window: chrono::Duration) -> Self {
        Self {
            per_account,
            per_address,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds to wait)` when the account or the address has used up its attempts.
    pub fn blocked(&self, email: &str, address: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        [
            (Key::Account(email.to_owned()), self.per_account),
            (Key::Address(address), self.per_address),
        ]
        .into_iter()
        .filter_map(|(key, limit)| {
            let window = windows.get(&key)?;
            let ends = window.started + self.window;
            (window.failures >= limit && now < ends)
                .then(|| (ends - now).num_seconds().max(1) as u64)
        })
        .max()
    }

    pub fn record_failure(&self, email: &str, address: IpAddr, now: DateTime<Utc>) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > SWEEP_ABOVE {
            windows.retain(|_, w| now < w.started + self.window);
        }
        for key in [Key::Account(email.to_owned()), Key::Address(address)] {
            let window = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now >= window.started + self.window {
                *window = Window {
                    started: now,
                    failures: 0,
                };
            }
            window.failures += 1;
        }
    }

    /// A successful login forgives the account's failures (not the address's).
    pub fn record_success(&self, email: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows.remove(&Key::Account(email.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let limiter = LoginLimiter::with_limits(3, 10, chrono::Duration::seconds(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.blocked("a@b.c", ip, t0), None);
            limiter.record_failure("a@b.c", ip, t0);
        }
        assert_eq!(limiter.blocked("a@b.c", ip, t0), Some(60));
        assert_eq!(limiter.blocked("other@b.c", ip, t0), None);
        let later = t0 + chrono::Duration::seconds(45);
        assert_eq!(limiter.blocked("a@b.c", ip, later), Some(15));
        assert_eq!(
            limiter.blocked("a@b.c", ip, t0 + chrono::Duration::seconds(60)),
            None
        );
    }

    #[test]
    fn blocks_an_address_trying_many_accounts() {
        let limiter = LoginLimiter::with_limits(100, 2, chrono::Duration::seconds(60));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        limiter.record_failure("a@b.c", ip, t0);
        limiter.record_failure("b@b.c", ip, t0);
        assert!(limiter.blocked("c@b.c", ip, t0).is_some());
        assert!(limiter
            .blocked("c@b.c", "10.0.0.2".parse().unwrap(), t0)
            .is_none());
    }
}
