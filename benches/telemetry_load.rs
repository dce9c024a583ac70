//! A lean HTTP load generator for `benches/telemetry_wrk.sh`: telemetry from many device
//! connections and, beside it, nearby searches at a steady rate, on one thread.
//!
//! The server shares the machine's two cores with whatever loads it, so the load's own CPU
//! is taken from the server's: `wrk` running a Lua `request()` function spent 35–44 µs a
//! request. This one writes each request from a reused buffer and reads each answer's
//! head and body with no more parsing than its status and length need; it prints its own
//! CPU time a request so that the saving is on record, run by run.
//!
//! The points are those of `benches/telemetry.lua`: scooter after scooter of the tokens'
//! CSV, round after round, each scooter's points in round k recorded k * POINTS ms after
//! the run's start (one ms apart), within about 2 m of the scooter's imported place when
//! FLEET names the imported CSV. With ORDER=random, each round goes through the scooters in
//! one fixed shuffled order instead of the CSV's: as devices report in a real fleet, a
//! group commit's rows then lie on pages far apart rather than on neighbouring ones.
//!
//! Settings (environment): TARGET (host:port, required), TOKENS (scooter_id,device_token
//! CSV, required), FLEET, ORDER (`csv` or `random`, `csv`), POINTS (1), CONNECTIONS (64),
//! DURATION (seconds, 10), NEARBY_RATE (searches a second, 0 for none), NEARBY_CONNECTIONS
//! (20).
//!
//! `cargo build --release --bench telemetry_load`, then run the binary cargo names.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Failure = Box<dyn std::error::Error>;

fn setting<T: std::str::FromStr>(name: &str, default: Option<T>) -> Result<T, Failure> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map_err(|_| format!("{name}={value} is not a valid value").into()),
        Err(_) => default.ok_or_else(|| format!("{name} must be set").into()),
    }
}

/// What one kind of request saw: each answer's latency in microseconds, and how many
/// answers were not 2xx.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    failed: u64,
}

impl Tally {
    /// Prints what `wrk --latency` prints of the same figures, under a `== what` line, so
    /// that one script reads either tool's output.
    fn report(&mut self, what: &str, seconds: f64) {
        self.latencies_us.sort_unstable();
        let at = |q: f64| {
            let n = self.latencies_us.len();
            if n == 0 {
                return 0.0;
            }
            let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
            f64::from(self.latencies_us[i]) / 1000.0
        };
        println!("== {what}");
        println!("  {} requests in {seconds:.2}s", self.latencies_us.len());
        println!(
            "Requests/sec: {:.2}",
            self.latencies_us.len() as f64 / seconds
        );
        println!("     50% {:.2}ms", at(0.50));
        println!("     99% {:.2}ms", at(0.99));
        println!("non-2xx answers: {}", self.failed);
    }
}

/// One keep-alive connection: sends a request, reads its answer; the status code.
struct Connection {
    target: String,
    stream: Option<TcpStream>,
    answer: Vec<u8>,
}

impl Connection {
    fn new(target: &str) -> Self {
        Connection {
            target: target.to_owned(),
            stream: None,
            answer: Vec::with_capacity(4096),
        }
    }

    /// Sends `request` and reads its answer, noting both in `tally`.
    async fn timed(&mut self, request: &[u8], tally: &RefCell<Tally>) -> Result<(), Failure> {
        let sent = Instant::now();
        let status = self.exchange(request).await?;
        let mut tally = tally.borrow_mut();
        tally.latencies_us.push(sent.elapsed().as_micros() as u32);
        tally.failed += u64::from(!(200..300).contains(&status));
        Ok(())
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<u16, Failure> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(&self.target).await?;
                stream.set_nodelay(true)?;
                self.stream.insert(stream)
            }
        };
        stream.write_all(request).await?;
        self.answer.clear();
        let (status, end, close) = loop {
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Err("the server closed the connection mid-answer".into());
            }
            self.answer.extend_from_slice(&chunk[..read]);
            if let Some(head) = head_end(&self.answer) {
                let (status, length, close) = parse_head(&self.answer[..head])?;
                let end = head + length;
                while self.answer.len() < end {
                    let read = stream.read(&mut chunk).await?;
                    if read == 0 {
                        return Err("the server closed the connection mid-body".into());
                    }
                    self.answer.extend_from_slice(&chunk[..read]);
                }
                break (status, end, close);
            }
        };
        if self.answer.len() != end {
            return Err("more bytes than one answer (nothing was pipelined)".into());
        }
        if close {
            self.stream = None;
        }
        Ok(status)
    }
}

fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The status, the body's length and whether the server closes after this answer.
fn parse_head(head: &[u8]) -> Result<(u16, usize, bool), Failure> {
    let text = std::str::from_utf8(head)?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or("an answer without a status line")?;
    let (mut length, mut close) = (0, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse()?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.trim().eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked answers are not read here".into());
        }
    }
    Ok((status, length, close))
}

/// The scooters to send for: each one's token and, with FLEET, its imported place, and the
/// order of a round (indices into both).
struct Fleet {
    tokens: Vec<String>,
    places: Vec<(f64, f64)>,
    order: Vec<usize>,
}

fn read_fleet() -> Result<Fleet, Failure> {
    let tokens_path: String = setting("TOKENS", None)?;
    let tokens: Vec<String> = std::fs::read_to_string(&tokens_path)?
        .lines()
        .filter_map(|line| line.split_once(',').map(|(_, token)| token.to_owned()))
        .filter(|token| token != "device_token")
        .collect();
    if tokens.is_empty() {
        return Err(format!("{tokens_path} holds no tokens").into());
    }
    let mut places = Vec::new();
    if let Ok(path) = std::env::var("FLEET") {
        for line in std::fs::read_to_string(&path)?.lines() {
            let mut fields = line.split(',').skip(1);
            if let (Some(Ok(lat)), Some(Ok(lon))) = (
                fields.next().map(str::parse::<f64>),
                fields.next().map(str::parse::<f64>),
            ) {
                places.push((lat, lon));
            }
        }
        if places.len() != tokens.len() {
            return Err(format!("{path} and {tokens_path} list different fleets").into());
        }
    }
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    match std::env::var("ORDER").as_deref() {
        Err(_) | Ok("csv") => {}
        Ok("random") => order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7)),
        Ok(other) => return Err(format!("ORDER is csv or random, not {other}").into()),
    }
    Ok(Fleet {
        tokens,
        places,
        order,
    })
}

/// Shared by the telemetry connections (one thread): the next request's number and each
/// round's timestamps.
struct Sending {
    fleet: Fleet,
    points: usize,
    base_ms: i64,
    sent: Cell<u64>,
    stamps: RefCell<(u64, Vec<String>)>,
}

impl Sending {
    /// The next request, written into `out`.
    fn next_request(&self, host: &str, rng: &mut impl Rng, out: &mut Vec<u8>) {
        let n = self.sent.get();
        self.sent.set(n + 1);
        let count = self.fleet.tokens.len() as u64;
        let (slot, round) = (self.fleet.order[(n % count) as usize], n / count);
        let mut stamps = self.stamps.borrow_mut();
        if stamps.1.is_empty() || stamps.0 != round {
            let first = self.base_ms + round as i64 * self.points as i64;
            stamps.1 = (1..=self.points as i64)
                .map(|i| {
                    DateTime::from_timestamp_millis(first + i)
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                        .unwrap_or_default()
                })
                .collect();
            stamps.0 = round;
        }
        let mut body = String::with_capacity(40 + 96 * self.points);
        body.push_str("{\"points\":[");
        for (i, stamp) in stamps.1.iter().enumerate() {
            let (lat, lon) = match self.fleet.places.get(slot) {
                Some(&(lat, lon)) => (
                    lat + (rng.gen::<f64>() - 0.5) * 0.00004,
                    lon + (rng.gen::<f64>() - 0.5) * 0.00006,
                ),
                None => (
                    48.84 + (n % 300) as f64 * 0.0001,
                    2.30 + (n % 500) as f64 * 0.0001 + (i + 1) as f64 * 0.00001,
                ),
            };
            if i > 0 {
                body.push(',');
            }
            let _ = write!(
                body,
                "{{\"lat\":{lat:.6},\"lon\":{lon:.6},\"range_km\":30,\"battery_pct\":60,\
                 \"recorded_at\":\"{stamp}\"}}"
            );
        }
        body.push_str("]}");
        out.clear();
        let _ = write!(
            Bytes(out),
            "POST /v1/telemetry HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {}\r\nContent-Length: {}\r\n\r\n{body}",
            self.fleet.tokens[slot],
            body.len()
        );
    }
}

/// `write!` into a byte buffer.
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// This process's CPU time so far (user and system).
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

fn main() -> Result<(), Failure> {
    let target: String = setting("TARGET", None)?;
    let connections: usize = setting("CONNECTIONS", Some(64))?;
    let duration = Duration::from_secs_f64(setting("DURATION", Some(10.0))?);
    let nearby_rate: f64 = setting("NEARBY_RATE", Some(0.0))?;
    let nearby_connections: usize = setting("NEARBY_CONNECTIONS", Some(20))?;
    let sending = Rc::new(Sending {
        fleet: read_fleet()?,
        points: setting("POINTS", Some(1))?,
        base_ms: chrono::Utc::now().timestamp_millis() / 1000 * 1000,
        sent: Cell::new(0),
        stamps: RefCell::new((0, Vec::new())),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let telemetry = Rc::new(RefCell::new(Tally::default()));
    let nearby = Rc::new(RefCell::new(Tally::default()));
    let (started, cpu_before) = (Instant::now(), cpu_time());
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (sending, tally, target) = (sending.clone(), telemetry.clone(), target.clone());
        tasks.push(local.spawn_local(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(c as u64 + 1);
            let mut connection = Connection::new(&target);
            let mut request = Vec::with_capacity(512);
            while Instant::now() < deadline {
                sending.next_request(&target, &mut rng, &mut request);
                connection.timed(&request, &tally).await?;
            }
            Ok::<(), Failure>(())
        }));
    }
    if nearby_rate > 0.0 {
        let period = Duration::from_secs_f64(nearby_connections as f64 / nearby_rate);
        for c in 0..nearby_connections {
            let (tally, target) = (nearby.clone(), target.clone());
            tasks.push(local.spawn_local(async move {
                // The same places as benches/nearby.lua: central Paris, at random.
                let mut rng = rand::rngs::StdRng::seed_from_u64(42 + c as u64);
                let mut connection = Connection::new(&target);
                let mut ticks = tokio::time::interval(period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut request = Vec::with_capacity(256);
                while Instant::now() < deadline {
                    ticks.tick().await;
                    let lat = 48.83 + rng.gen::<f64>() * 0.05;
                    let lon = 2.28 + rng.gen::<f64>() * 0.12;
                    request.clear();
                    let _ = write!(
                        Bytes(&mut request),
                        "GET /v1/scooters/nearby?lat={lat:.5}&lon={lon:.5}&radius_m=500&limit=10 \
                         HTTP/1.1\r\nHost: {target}\r\n\r\n"
                    );
                    connection.timed(&request, &tally).await?;
                }
                Ok::<(), Failure>(())
            }));
        }
    }
    runtime.block_on(local.run_until(async {
        for task in tasks {
            task.await??;
        }
        Ok::<(), Failure>(())
    }))?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu_before;
    telemetry.borrow_mut().report("telemetry", seconds);
    if nearby_rate > 0.0 {
        nearby.borrow_mut().report("nearby", seconds);
    }
    let requests = telemetry.borrow().latencies_us.len() + nearby.borrow().latencies_us.len();
    println!("== load");
    println!(
        "load CPU: {:.2} cores, {:.1} µs a request",
        cpu.as_secs_f64() / seconds,
        cpu.as_secs_f64() * 1e6 / requests.max(1) as f64
    );
    Ok(())
}
