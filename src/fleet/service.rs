//! `Fleet`: the live index behind a lock, the telemetry writer's inbox, the change feed,
//! and the one way every domain changes a scooter's state.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::device::{to_hex, token_hash, DEVICE_TOKEN_LEN};
use super::ingest::Job;
use super::live::{
    ChangeKind, FleetChange, IndexBuilder, LiveIndex, Record, Scooter, ServiceArea, SnapshotRoom,
    SWEPT_AT_ONCE,
};
use super::{store, transition, Event, Reading, ScooterState};
use crate::db::Db;
use crate::error::Error;

/// How many requests may wait for each telemetry writer before senders wait too.
const WRITER_QUEUE: usize = 4096;

/// How many telemetry writers commit side by side on PostgreSQL unless configured, each for
/// its own share of the scooters. SQLite has one writer at a time whatever we do, so it
/// gets one.
const POSTGRES_WRITERS: usize = 1;

/// How far back each pass of [`Fleet::follow_states`] looks, in events.
const STATE_LOOKBACK: i64 = 500;

/// How many positions [`Fleet::set_area`] copies out of the index at a time (1 MiB).
const PLACED_AT_ONCE: usize = 65_536;

/// How many scooters one transaction of a sweep changes ([`Fleet::change_states`]).
const CHANGED_AT_ONCE: usize = 256;

/// How many changes a slow listener may fall behind before it misses some.
const CHANGE_FEED: usize = 16_384;

/// The fleet: shared by every request and worker through `AppState::fleet`.
pub struct Fleet {
    live: RwLock<LiveIndex>,
    changes: broadcast::Sender<FleetChange>,
    /// One inbox per telemetry writer; a scooter's points always go to the same one, so
    /// two writers never touch the same scooter's rows and each scooter's points are
    /// stored and shown in the order they came.
    writers: Vec<mpsc::Sender<Job>>,
    writer_inboxes: Mutex<Vec<mpsc::Receiver<Job>>>,
    /// The event id up to which [`Fleet::adopt_new`] has looked for new scooters.
    adopted_through: AtomicI64,
    /// The least range, in km, a scooter needs to be rented.
    pub rental_floor_km: f64,
}

/// Why a state change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no scooter has this id")]
    UnknownScooter,
    #[error("{} is not possible while the scooter is {}", event.as_str(), from.as_str())]
    NotAllowed { from: ScooterState, event: Event },
    #[error(transparent)]
    Internal(#[from] Error),
}

/// A newly registered scooter's device token, to be shown once.
#[derive(Debug)]
pub struct Registered {
    pub device_token: String,
}

/// Which of `lanes` telemetry writers takes `scooter_id`'s points: always the same one.
fn lane(scooter_id: &str, lanes: usize) -> usize {
    share(scooter_id, lanes)
}

/// Which of `parts` shares of a large telemetry group takes `scooter_id`'s points (see
/// `ingest::split`): always the same one, and drawn apart from [`lane`], so that one
/// writer's scooters spread over every part.
pub(super) fn part(scooter_id: &str, parts: usize) -> usize {
    share(("part", scooter_id), parts)
}

/// Which of `shares` `key` falls in, by a hash that is the same in every process.
fn share(key: impl std::hash::Hash, shares: usize) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let hash =
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(key);
    (hash % shares as u64) as usize
}

/// One rebuild of the live index's tree ([`Fleet::refit_tree`]).
#[derive(Clone, Copy, Debug)]
pub struct Rebuilt {
    /// The entries the worn tree held.
    pub entries: usize,
    /// From the first look at the tree to the worn one freed.
    pub took: std::time::Duration,
    /// Of that, the time searches and moves waited: the snapshot's copy and the replay.
    pub locked: std::time::Duration,
}

impl Fleet {
    /// The fleet as the database has it: the live index is rebuilt from every stored scooter.
    /// On PostgreSQL, `writers` telemetry writers commit side by side.
    pub async fn load(db: &Db, rental_floor_km: f64, writers: Option<u16>) -> anyhow::Result<Self> {
        let started = Instant::now();
        let adopted_through = store::last_event_id(db).await?;
        // Counted first, so that each part of the index is allocated once, at its size.
        let count = store::count_scooters(db).await?;
        let mut builder = IndexBuilder::with_capacity(usize::try_from(count).unwrap_or(0));
        store::each_scooter(db, |row| {
            let (record, token_hash) = stored_scooter(&row)?;
            builder.push(row.scooter_id, record, token_hash);
            Ok::<_, anyhow::Error>(())
        })
        .await?;
        let read = started.elapsed();
        let live = builder.finish();
        tracing::info!(
            scooters = live.len(),
            read_ms = read.as_millis() as u64,
            build_ms = (started.elapsed() - read).as_millis() as u64,
            "live index loaded"
        );
        let lanes = match db {
            Db::Sqlite { .. } => 1,
            Db::Postgres(_) => writers.map_or(POSTGRES_WRITERS, usize::from).max(1),
        };
        Ok(Fleet::with_index(
            live,
            lanes,
            adopted_through,
            rental_floor_km,
        ))
    }

    /// The fleet `live` shows, with `lanes` telemetry writers, having adopted new scooters
    /// up to the event `adopted_through`.
    fn with_index(
        live: LiveIndex,
        lanes: usize,
        adopted_through: i64,
        rental_floor_km: f64,
    ) -> Self {
        let (writers, inboxes) = (0..lanes).map(|_| mpsc::channel(WRITER_QUEUE)).unzip();
        let (changes, _) = broadcast::channel(CHANGE_FEED);
        Fleet {
            live: RwLock::new(live),
            changes,
            writers,
            writer_inboxes: Mutex::new(inboxes),
            adopted_through: AtomicI64::new(adopted_through),
            rental_floor_km,
        }
    }

    /// A fleet of `live` alone, for tests of what uses it in memory.
    #[cfg(test)]
    pub fn in_memory(live: LiveIndex) -> Self {
        Fleet::with_index(live, 1, 0, 5.0)
    }

    /// Takes in scooters registered in the database by someone else (a `scooters import`,
    /// another server); returns how many. Cheap when there are none: one count. Otherwise
    /// only the scooters dropped off since the last look are read (event ids are handed out
    /// before commit, so it looks [`STATE_LOOKBACK`] events further back); the whole fleet
    /// is read only if some are still missing after that.
    pub async fn adopt_new(&self, db: &Db) -> anyhow::Result<usize> {
        let stored = store::count_scooters(db).await?;
        if stored <= self.read().len() as i64 {
            return Ok(0);
        }
        let mut new = Vec::new();
        let looked = self.adopted_through.load(Ordering::Relaxed);
        let newest = store::last_event_id(db).await?;
        let after = looked.saturating_sub(STATE_LOOKBACK);
        store::each_scooter_dropped_off(db, after, newest, |row| self.unknown(&row, &mut new))
            .await?;
        if ((self.read().len() + new.len()) as i64) < stored {
            tracing::info!(
                "new scooters beyond the event log's recent part: reading every scooter"
            );
            new.clear();
            store::each_scooter(db, |row| self.unknown(&row, &mut new)).await?;
        }
        self.adopted_through.fetch_max(newest, Ordering::Relaxed);
        let mut adopted = 0;
        for (scooter, hash) in new {
            if self.write().insert(scooter.clone(), hash) {
                adopted += 1;
                self.publish(ChangeKind::Registered, scooter);
            }
        }
        Ok(adopted)
    }

    /// `row`'s scooter pushed to `new` if the live index does not have it.
    fn unknown(
        &self,
        row: &store::ScooterRow<'_>,
        new: &mut Vec<(Scooter, [u8; 32])>,
    ) -> anyhow::Result<()> {
        if self.read().record(row.scooter_id).is_none() {
            let (record, token_hash) = stored_scooter(row)?;
            new.push((Scooter::new(row.scooter_id, &record), token_hash));
        }
        Ok(())
    }

    /// Takes in the state changes other servers sharing the database made since event
    /// `cursor`, and returns the new cursor. Event ids are handed out before commit, so a
    /// change may appear below the cursor a moment later: each pass looks back
    /// [`STATE_LOOKBACK`] events too, and versions make applying one twice harmless.
    pub async fn follow_states(&self, db: &Db, cursor: i64) -> anyhow::Result<i64> {
        let rows = store::states_since(db, cursor.saturating_sub(STATE_LOOKBACK), 5_000).await?;
        let mut newest = cursor;
        for row in rows {
            newest = newest.max(row.event_id);
            let known = self
                .read()
                .record(&row.scooter_id)
                .map(|s| s.state_version >= Record::version(row.state_version));
            if known != Some(false) {
                // Already known, or registered elsewhere and not taken in yet.
                continue;
            }
            let Some(state) = ScooterState::parse(&row.state, row.state_reason.as_deref()) else {
                continue;
            };
            let changed = self
                .write()
                .apply_state(&row.scooter_id, state, row.state_version);
            if let Some(scooter) = changed {
                self.publish(ChangeKind::State, scooter);
            }
        }
        Ok(newest)
    }

    /// Makes `area` the service area the live index places every scooter in, so that
    /// nearby search needs no polygon test. The tests run outside the lock (about a second
    /// for a million scooters, so call it from a blocking task), on
    /// [`PLACED_AT_ONCE`] positions copied out at a time; scooters that moved meanwhile
    /// are tested again under it.
    pub fn set_area(&self, area: Arc<dyn ServiceArea>) {
        if self.read().area_version() == area.version() {
            return;
        }
        let count = self.write().start_placing();
        let mut inside = Vec::with_capacity(count);
        let mut positions = Vec::with_capacity(PLACED_AT_ONCE);
        while inside.len() < count {
            self.read().positions_from(inside.len(), &mut positions);
            if positions.is_empty() {
                break;
            }
            inside.extend(positions.iter().map(|&(lat, lon)| area.contains(lat, lon)));
        }
        self.write().adopt_area(area, inside);
    }

    /// Rebuilds the live index's R-tree when moves have worn it (a tree that only takes
    /// removals and insertions answers ever more slowly). The bulk load runs outside the
    /// lock, so call it from a blocking task; moves made meanwhile are replayed into the
    /// new tree before it replaces the old one, and the old tree's pages are given back to
    /// the system. What it took, if it rebuilt.
    pub fn refit_tree(&self) -> Option<Rebuilt> {
        let started = Instant::now();
        let size = {
            let live = self.read();
            if !live.is_worn() {
                return None;
            }
            live.tree_size()
        };
        let room = SnapshotRoom::new(size);
        let (snapshot, copied) = {
            let mut live = self.write();
            if !live.is_worn() {
                return None;
            }
            let locked = Instant::now();
            (live.start_rebuild(room)?, locked.elapsed())
        };
        let rebuilt = snapshot.build();
        let (worn, replayed) = {
            let mut live = self.write();
            let locked = Instant::now();
            (live.finish_rebuild(rebuilt), locked.elapsed())
        };
        drop(worn);
        crate::heap::give_back_free_pages();
        Some(Rebuilt {
            entries: size,
            took: started.elapsed(),
            locked: copied + replayed,
        })
    }

    /// The slot ranges a sweep over the whole fleet takes in turn, [`SWEPT_AT_ONCE`] slots
    /// each (see [`LiveIndex::ids_in_state`]).
    pub fn sweep_slices(&self) -> impl Iterator<Item = std::ops::Range<u32>> {
        let count = self.read().len() as u32;
        (0..count)
            .step_by(SWEPT_AT_ONCE as usize)
            .map(|start| start..start.saturating_add(SWEPT_AT_ONCE))
    }

    /// Reads the live index. Hold it briefly: writers wait meanwhile.
    pub fn read(&self) -> RwLockReadGuard<'_, LiveIndex> {
        self.live
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, LiveIndex> {
        self.live
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers each of `scooter_ids` as armed for dispatch, or not, in its record
    /// ([`crate::dispatch::Dispatcher`] keeps it there).
    pub fn set_dispatch_armed<S: AsRef<str>>(&self, scooter_ids: &[S], armed: bool) {
        if !scooter_ids.is_empty() {
            self.write().set_dispatch_armed(scooter_ids, armed);
        }
    }

    /// A scooter as the live view has it.
    pub fn get(&self, scooter_id: &str) -> Option<Scooter> {
        self.read().get(scooter_id)
    }

    /// The scooter a device token belongs to.
    pub fn device(&self, token_hash: &[u8; 32]) -> Option<Arc<str>> {
        self.read().by_token(token_hash).map(|s| s.scooter_id)
    }

    /// Every accepted change from now on: positions and states.
    pub fn subscribe(&self) -> broadcast::Receiver<FleetChange> {
        self.changes.subscribe()
    }

    fn publish(&self, kind: ChangeKind, scooter: Scooter) {
        // Nobody listening is fine: the feed is for whoever cares.
        let _ = self.changes.send(FleetChange { kind, scooter });
    }

    /// Registers a scooter at `reading` (its first point); `Ok(None)` when the id is taken.
    pub async fn register(
        &self,
        db: &Db,
        scooter_id: &str,
        reading: Reading,
    ) -> Result<Option<Registered>, Error> {
        let device_token = crate::ids::new_secret(DEVICE_TOKEN_LEN);
        let hash = token_hash(&device_token);
        let created = store::insert_scooter(
            db,
            &store::NewScooter {
                scooter_id,
                device_token_hash: &to_hex(&hash),
                reading,
            },
        )
        .await?;
        if !created {
            return Ok(None);
        }
        let scooter = Scooter {
            scooter_id: scooter_id.into(),
            state: ScooterState::Available,
            state_version: 0,
            lat: reading.lat,
            lon: reading.lon,
            range_km: reading.range_km,
            battery_pct: reading.battery_pct,
            last_seen_ms: reading.recorded_at_ms,
            heard_ms: reading.recorded_at_ms,
        };
        self.write().insert(scooter.clone(), hash);
        self.publish(ChangeKind::Registered, scooter);
        Ok(Some(Registered { device_token }))
    }

    /// Stores a device's valid points durably (group commit) and then shows them in the
    /// live view. Returns once they are committed and on disk (see [`Db::durable`]).
    pub async fn ingest(
        &self,
        scooter_id: Arc<str>,
        points: Vec<Reading>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (ack, done) = oneshot::channel();
        let writer = &self.writers[lane(&scooter_id, self.writers.len())];
        let job = Job {
            scooter_id,
            points,
            received_at_ms: now.timestamp_millis(),
            ack,
        };
        writer
            .send(job)
            .await
            .map_err(|_| Error::Internal(anyhow::anyhow!("the telemetry writer has stopped")))?;
        done.await
            .map_err(|_| Error::Internal(anyhow::anyhow!("the telemetry writer dropped a batch")))?
            .map_err(|cause| Error::Internal(anyhow::anyhow!("storing telemetry: {cause}")))
    }

    /// The telemetry writers' inboxes, taken once by the workers that drain them.
    pub(super) fn take_writer_inboxes(&self) -> Vec<mpsc::Receiver<Job>> {
        std::mem::take(
            &mut *self
                .writer_inboxes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Shows committed points in the live view (called by the writer after its commit).
    pub(super) fn apply_committed(&self, scooter_id: &str, points: &[Reading], heard_ms: i64) {
        let Some(newest) = points.iter().max_by_key(|p| p.recorded_at_ms) else {
            return;
        };
        let moved = self.write().apply_reading(scooter_id, newest, heard_ms);
        if let Some(scooter) = moved {
            self.publish(ChangeKind::Moved, scooter);
        }
    }

    /// Shows in the live view a state change another domain committed in its own
    /// transaction (with [`store::change_state_on`]).
    pub fn committed_state(&self, scooter_id: &str, state: ScooterState, version: i64) {
        let changed = self.write().apply_state(scooter_id, state, version);
        if let Some(scooter) = changed {
            self.publish(ChangeKind::State, scooter);
        }
    }

    /// The stored state of a scooter, taken into the live view.
    async fn refresh(&self, db: &Db, scooter_id: &str) -> Result<ScooterState, ChangeError> {
        let (state, version) = store::state_of(db, scooter_id)
            .await?
            .ok_or(ChangeError::UnknownScooter)?;
        if let Some(scooter) = self.write().apply_state(scooter_id, state, version) {
            self.publish(ChangeKind::State, scooter);
        }
        Ok(state)
    }

    /// Moves a scooter through the state machine with `event`, recorded in the event log.
    ///
    /// The change is a conditional update (`where state = <the state it leaves>`), so two
    /// callers racing for the same scooter (two riders unlocking it) cannot both win: the
    /// loser gets `NotAllowed` with the state the winner left it in.
    pub async fn change_state(
        &self,
        db: &Db,
        scooter_id: &str,
        event: Event,
        now: DateTime<Utc>,
    ) -> Result<ScooterState, ChangeError> {
        let mut from = self
            .read()
            .get(scooter_id)
            .map(|s| s.state)
            .ok_or(ChangeError::UnknownScooter)?;
        // The live view may lag the database (a change made by another server on it): a
        // refusal or a lost race is checked against the stored state before it stands.
        let mut checked = false;
        for _ in 0..3 {
            let Some(to) = transition(from, event) else {
                if checked {
                    return Err(ChangeError::NotAllowed { from, event });
                }
                from = self.refresh(db, scooter_id).await?;
                checked = true;
                continue;
            };
            let stored =
                store::change_state(db, scooter_id, from, to, event, now.timestamp_millis())
                    .await?;
            if let Some(version) = stored {
                let changed = self.write().apply_state(scooter_id, to, version);
                if let Some(scooter) = changed {
                    self.publish(ChangeKind::State, scooter);
                }
                return Ok(to);
            }
            from = self.refresh(db, scooter_id).await?;
            checked = true;
        }
        Err(ChangeError::NotAllowed { from, event })
    }

    /// [`Fleet::change_state`] for each of `scooter_ids` that the live view has in `from`
    /// (a sweep over the fleet), [`CHANGED_AT_ONCE`] to a transaction. A scooter the
    /// database has in another state (changed meanwhile, here or by another server) goes
    /// through [`Fleet::change_state`] on its own, which looks again. Returns how many
    /// changed.
    pub async fn change_states(
        &self,
        db: &Db,
        scooter_ids: &[Arc<str>],
        from: ScooterState,
        event: Event,
        now: DateTime<Utc>,
    ) -> Result<usize, Error> {
        let Some(to) = transition(from, event) else {
            return Ok(0);
        };
        let mut changed = 0;
        for ids in scooter_ids.chunks(CHANGED_AT_ONCE) {
            let versions =
                store::change_states(db, ids, from, to, event, now.timestamp_millis()).await?;
            for (scooter_id, version) in ids.iter().zip(versions) {
                if let Some(version) = version {
                    changed += 1;
                    if let Some(scooter) = self.write().apply_state(scooter_id, to, version) {
                        self.publish(ChangeKind::State, scooter);
                    }
                    continue;
                }
                match self.change_state(db, scooter_id, event, now).await {
                    Ok(_) => changed += 1,
                    Err(ChangeError::NotAllowed { .. } | ChangeError::UnknownScooter) => {}
                    Err(ChangeError::Internal(err)) => return Err(err),
                }
            }
        }
        Ok(changed)
    }
}

/// A stored scooter as the live index holds it, with its token hash.
fn stored_scooter(row: &store::ScooterRow<'_>) -> anyhow::Result<(Record, [u8; 32])> {
    let state = ScooterState::parse(row.state, row.state_reason)
        .ok_or_else(|| anyhow::anyhow!("scooter {}: unknown state", row.scooter_id))?;
    let hash = row
        .device_token_hash
        .and_then(|hash| <[u8; 32]>::try_from(hash).ok())
        .ok_or_else(|| anyhow::anyhow!("scooter {}: bad token hash", row.scooter_id))?;
    let record = Record {
        state,
        state_version: Record::version(row.state_version),
        lat: row.lat,
        lon: row.lon,
        range_km: row.range_km,
        battery_pct: row.battery_pct,
        last_seen_ms: row.last_seen_ms,
        heard_ms: row.last_seen_ms,
        trips: 0,
        dispatch_armed: false,
    };
    Ok((record, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::ChangeKind;

    async fn fleet() -> (Fleet, Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
        let db = Db::connect(&url, 4).await.unwrap();
        db.migrate().await.unwrap();
        (Fleet::load(&db, 5.0, None).await.unwrap(), db, dir)
    }

    fn reading(at_ms: i64) -> Reading {
        Reading {
            lat: 48.8566,
            lon: 2.3522,
            range_km: 30.0,
            battery_pct: 90.0,
            speed_kmh: None,
            recorded_at_ms: at_ms,
        }
    }

    #[tokio::test]
    async fn two_riders_racing_for_one_scooter_cannot_both_win() {
        let (fleet, db, _dir) = fleet().await;
        fleet
            .register(&db, "CS-1", reading(1_000))
            .await
            .unwrap()
            .unwrap();
        let now = DateTime::from_timestamp_millis(2_000).unwrap();
        let (a, b) = tokio::join!(
            fleet.change_state(&db, "CS-1", Event::TripStart, now),
            fleet.change_state(&db, "CS-1", Event::TripStart, now),
        );
        let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{a:?} {b:?}");
        let lost = if a.is_ok() { b } else { a };
        assert!(matches!(
            lost,
            Err(ChangeError::NotAllowed {
                from: ScooterState::OnTrip,
                ..
            })
        ));
        assert_eq!(fleet.get("CS-1").unwrap().state, ScooterState::OnTrip);
        assert!(matches!(
            fleet.change_state(&db, "CS-2", Event::TripStart, now).await,
            Err(ChangeError::UnknownScooter)
        ));
    }

    #[tokio::test]
    async fn a_live_view_behind_the_database_catches_up() {
        let (fleet, db, _dir) = fleet().await;
        fleet
            .register(&db, "CS-1", reading(1_000))
            .await
            .unwrap()
            .unwrap();
        let now = DateTime::from_timestamp_millis(2_000).unwrap();
        // Another server on the same database starts a trip the live view has not seen.
        let other = Fleet::load(&db, 5.0, None).await.unwrap();
        other
            .change_state(&db, "CS-1", Event::TripStart, now)
            .await
            .unwrap();
        assert_eq!(fleet.get("CS-1").unwrap().state, ScooterState::Available);
        let ended = fleet
            .change_state(&db, "CS-1", Event::TripEnd, now)
            .await
            .unwrap();
        assert_eq!(ended, ScooterState::Available);
        assert_eq!(
            store::state_of(&db, "CS-1").await.unwrap().unwrap(),
            (ScooterState::Available, 2)
        );
    }

    #[tokio::test]
    async fn a_worn_tree_is_rebuilt_and_says_what_it_took() {
        let (fleet, db, _dir) = fleet().await;
        let ids: Vec<String> = (0..100).map(|i| format!("CS-{i}")).collect();
        for id in &ids {
            fleet
                .register(&db, id, reading(1_000))
                .await
                .unwrap()
                .unwrap();
        }
        assert!(fleet.refit_tree().is_none(), "a fresh tree is not worn");
        // Every scooter 150 m east and back, round after round: each point a move through
        // the tree, until the tree counts as worn.
        let mut at = 2_000;
        for round in 0.. {
            if fleet.read().is_worn() {
                break;
            }
            for id in &ids {
                at += 1;
                let mut point = reading(at);
                point.lon += if round % 2 == 0 { 0.002 } else { 0.0 };
                fleet.apply_committed(id, &[point], at);
            }
        }
        let rebuilt = fleet.refit_tree().expect("a worn tree is rebuilt");
        assert_eq!(rebuilt.entries, ids.len(), "one entry a scooter");
        assert!(rebuilt.locked <= rebuilt.took, "{rebuilt:?}");
        assert!(!fleet.read().is_worn());
        assert!(fleet.refit_tree().is_none(), "rebuilt once, not again");
    }

    #[tokio::test]
    async fn changes_are_published() {
        let (fleet, db, _dir) = fleet().await;
        let mut feed = fleet.subscribe();
        fleet
            .register(&db, "CS-1", reading(1_000))
            .await
            .unwrap()
            .unwrap();
        assert!(fleet
            .register(&db, "CS-1", reading(1_500))
            .await
            .unwrap()
            .is_none());
        fleet.apply_committed("CS-1", &[reading(3_000), reading(2_000)], 3_100);
        let now = DateTime::from_timestamp_millis(4_000).unwrap();
        fleet
            .change_state(&db, "CS-1", Event::Maintenance, now)
            .await
            .unwrap();
        let kinds: Vec<ChangeKind> = (0..3).map(|_| feed.try_recv().unwrap().kind).collect();
        assert_eq!(
            kinds,
            [ChangeKind::Registered, ChangeKind::Moved, ChangeKind::State]
        );
        assert!(feed.try_recv().is_err());
        assert_eq!(fleet.get("CS-1").unwrap().last_seen_ms, 3_000);
    }
}
