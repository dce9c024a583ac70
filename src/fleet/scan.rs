//! Every stored scooter read from SQLite with a statement of its own, for the cold start.
//!
//! Through sqlx a million rows cost a copy of every column value, made on SQLite's thread
//! and freed on the runtime's: 7–12 s on two cores, mostly spent in the allocator's locks.
//! Here the rows are stepped on the connection's handle from the calling thread and each
//! value is borrowed from SQLite's own row buffer, so nothing is copied that the index does
//! not keep.

use rusqlite::types::{FromSqlError, Type};
use sqlx::sqlite::SqlitePool;

use super::store::ScooterRow;
use crate::db::raw;

/// Hands every row of `select` (the columns of [`ScooterRow`], in its order) to `take`,
/// on a connection of `pool`. The read blocks the calling thread: a runtime worker first
/// passes its other tasks on ([`raw::blocking`]). The first error `take` returns stops the
/// read and is returned.
pub(super) async fn each_scooter<E: From<sqlx::Error>>(
    pool: &SqlitePool,
    select: &str,
    mut take: impl FnMut(ScooterRow<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut conn = pool.acquire().await?;
    let mut refused = None;
    let read = raw::on_handle(&mut conn, |c| {
        raw::blocking(|| read_rows(c, select, &mut take, &mut refused))
    })
    .await;
    match refused {
        Some(err) => Err(err),
        None => read.map_err(E::from),
    }
}

fn read_rows<E>(
    c: &rusqlite::Connection,
    select: &str,
    take: &mut impl FnMut(ScooterRow<'_>) -> Result<(), E>,
    refused: &mut Option<E>,
) -> rusqlite::Result<()> {
    let mut statement = c.prepare(select)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let scooter = ScooterRow {
            scooter_id: text(row, 0)?,
            device_token_hash: row
                .get_ref(1)?
                .as_blob_or_null()
                .map_err(|e| bad(1, Type::Blob, e))?,
            state: text(row, 2)?,
            state_reason: row
                .get_ref(3)?
                .as_str_or_null()
                .map_err(|e| bad(3, Type::Text, e))?,
            state_version: row.get(4)?,
            lat: row.get(5)?,
            lon: row.get(6)?,
            range_km: row.get(7)?,
            battery_pct: row.get(8)?,
            last_seen_ms: row.get(9)?,
        };
        if let Err(err) = take(scooter) {
            *refused = Some(err);
            break;
        }
    }
    Ok(())
}

/// The text in column `at`, borrowed from the row.
fn text<'r>(row: &'r rusqlite::Row<'_>, at: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(at)?
        .as_str()
        .map_err(|e| bad(at, Type::Text, e))
}

/// A column that does not hold the type its field needs.
fn bad(at: usize, wanted: Type, err: FromSqlError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(at, wanted, Box::new(err))
}

#[cfg(test)]
mod tests {
    use crate::db::Db;
    use crate::fleet::store;

    /// A row as the index takes it, owned, to compare the two ways of reading.
    type Owned = (
        String,
        Option<Vec<u8>>,
        String,
        Option<String>,
        i64,
        [f64; 4],
        i64,
    );

    async fn read_both(db: &Db) -> (Vec<Owned>, Vec<Owned>) {
        let mut ways = [Vec::new(), Vec::new()];
        for (way, rows) in ways.iter_mut().enumerate() {
            let take = |r: store::ScooterRow<'_>| {
                rows.push((
                    r.scooter_id.to_owned(),
                    r.device_token_hash.map(<[u8]>::to_vec),
                    r.state.to_owned(),
                    r.state_reason.map(str::to_owned),
                    r.state_version,
                    [r.lat, r.lon, r.range_km, r.battery_pct],
                    r.last_seen_ms,
                ));
                Ok::<_, sqlx::Error>(())
            };
            if way == 0 {
                store::each_scooter(db, take).await.unwrap();
            } else {
                store::each_scooter_through_sqlx(db, take).await.unwrap();
            }
        }
        let [direct, through_sqlx] = ways;
        (direct, through_sqlx)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_direct_read_gives_the_rows_sqlx_gives() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("scan.db").display());
        let db = Db::connect(&url, 2).await.unwrap();
        db.migrate().await.unwrap();
        let Db::Sqlite { write, .. } = &db else {
            unreachable!("a SQLite URL")
        };
        let hex = "ab".repeat(32);
        for (i, (id, hash, state, reason)) in [
            ("S-1", hex.as_str(), "available", None),
            (
                "S-2",
                "not hex at all",
                "non_operational",
                Some("maintenance"),
            ),
            ("Σκούτερ-3", &"0f".repeat(32), "on_trip", None),
        ]
        .into_iter()
        .enumerate()
        {
            sqlx::query(
                "insert into scooters (scooter_id, device_token_hash, state, state_reason, \
                 state_version, lat, lon, range_km, battery_pct, last_seen_ms, \
                 registered_at_ms) values ($1, $2, $3, $4, $5, 48.8566, 2.3522, 12.5, 40, $6, 1)",
            )
            .bind(id)
            .bind(hash)
            .bind(state)
            .bind(reason)
            .bind(i as i64 + 7)
            .bind(1_700_000_000_000_i64 + i as i64)
            .execute(write)
            .await
            .unwrap();
        }
        // An integer where a real is stored reads as the same number both ways.
        sqlx::query("update scooters set lat = 48 where scooter_id = 'S-1'")
            .execute(write)
            .await
            .unwrap();

        let (direct, through_sqlx) = read_both(&db).await;
        assert_eq!(direct.len(), 3);
        assert_eq!(direct, through_sqlx);
        assert_eq!(direct[0].1.as_deref(), Some(&[0xab; 32][..]));
        assert_eq!(direct[1].1, None, "text that is not hex gives no hash");
        assert_eq!(direct[1].3.as_deref(), Some("maintenance"));
        assert_eq!(direct[0].5[0], 48.0);

        // An error from the taker stops the read and is what comes back.
        let mut seen = 0;
        let err = store::each_scooter(&db, |_| {
            seen += 1;
            Err::<(), _>(sqlx::Error::RowNotFound)
        })
        .await
        .unwrap_err();
        assert!(matches!(err, sqlx::Error::RowNotFound), "{err}");
        assert_eq!(seen, 1);
    }

    #[tokio::test]
    async fn an_in_memory_database_is_read_on_a_current_thread_runtime() {
        let db = Db::connect("sqlite::memory:", 1).await.unwrap();
        db.migrate().await.unwrap();
        let (direct, through_sqlx) = read_both(&db).await;
        assert!(direct.is_empty() && through_sqlx.is_empty());
    }
}
