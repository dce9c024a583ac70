//! Bulk registration from a file (`scootfleet scooters import FILE`): JSON or CSV rows of
//! `scooter_id, lat, lon, range_km, battery_pct`, each checked like a registration.
//!
//! The whole file is checked before anything is written. Scooters already registered are
//! skipped, so an import can be run again. Each new scooter's device token is written to a
//! tokens file (`scooter_id,device_token`, readable by its owner only): it exists nowhere
//! else. The import writes to the database; a server already running takes the new
//! scooters in within ten silence sweeps (50 s by default).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use super::device::{to_hex, token_hash, DEVICE_TOKEN_LEN};
use super::{battery_problem, is_valid_scooter_id, position_problem, store, Reading};
use crate::config::Config;
use crate::db::Db;

/// One scooter to register, as the file gives it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub scooter_id: String,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub battery_pct: f64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonFile {
    List(Vec<Row>),
    Wrapped { scooters: Vec<Row> },
}

/// Rows per transaction.
const CHUNK: usize = 1000;

/// The rows of a file's text: JSON when it starts with `[` or `{`, CSV with a header
/// otherwise. The first problem found is reported with its row number.
pub fn parse(text: &str) -> Result<Vec<Row>, String> {
    let trimmed = text.trim_start();
    let rows = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        match serde_json::from_str::<JsonFile>(trimmed) {
            Ok(JsonFile::List(rows) | JsonFile::Wrapped { scooters: rows }) => rows,
            Err(e) => return Err(format!("the JSON could not be read: {e}")),
        }
    } else {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut rows = Vec::new();
        for (i, row) in reader.deserialize::<Row>().enumerate() {
            rows.push(row.map_err(|e| format!("row {}: {e}", i + 1))?);
        }
        rows
    };
    let mut seen = std::collections::HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let problem = if !is_valid_scooter_id(&row.scooter_id) {
            Some(format!(
                "scooter_id `{}` is not a fleet code",
                row.scooter_id
            ))
        } else if !seen.insert(row.scooter_id.as_str()) {
            Some(format!("{} appears twice", row.scooter_id))
        } else {
            position_problem(row.lat, row.lon)
                .or_else(|| battery_problem(row.range_km, row.battery_pct))
        };
        if let Some(problem) = problem {
            return Err(format!("row {}: {problem}", i + 1));
        }
    }
    Ok(rows)
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub registered: u64,
    pub already_known: u64,
}

/// Registers `rows` at `now`, writing each new token to `tokens`; `progress` is told how
/// many rows are done.
pub async fn register_all(
    db: &Db,
    rows: &[Row],
    now: DateTime<Utc>,
    tokens: &mut impl Write,
    progress: impl Fn(u64),
) -> anyhow::Result<Imported> {
    let mut imported = Imported::default();
    writeln!(tokens, "scooter_id,device_token")?;
    for chunk in rows.chunks(CHUNK) {
        let secrets: Vec<String> = chunk
            .iter()
            .map(|_| crate::ids::new_secret(DEVICE_TOKEN_LEN))
            .collect();
        let new: Vec<(&str, String, Reading)> = chunk
            .iter()
            .zip(&secrets)
            .map(|(row, secret)| {
                let reading = Reading {
                    lat: row.lat,
                    lon: row.lon,
                    range_km: row.range_km,
                    battery_pct: row.battery_pct,
                    speed_kmh: None,
                    recorded_at_ms: now.timestamp_millis(),
                };
                (
                    row.scooter_id.as_str(),
                    to_hex(&token_hash(secret)),
                    reading,
                )
            })
            .collect();
        let created = store::insert_scooters(db, &new).await?;
        for ((row, secret), created) in chunk.iter().zip(&secrets).zip(created) {
            if created {
                imported.registered += 1;
                writeln!(tokens, "{},{secret}", row.scooter_id)?;
            } else {
                imported.already_known += 1;
            }
        }
        progress(chunk.len() as u64);
    }
    tokens.flush()?;
    Ok(imported)
}

/// The `scootfleet scooters import FILE` command: reads and checks the file, registers its
/// scooters in the configured database and writes their tokens (to `FILE.tokens.csv`
/// unless told otherwise; an existing file is never overwritten), registered at `now`.
/// Returns a summary line.
pub async fn run(
    config: &Config,
    file: &Path,
    tokens: Option<PathBuf>,
    show_progress: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let rows = parse(&text).map_err(|problem| anyhow::anyhow!("{}: {problem}", file.display()))?;
    let tokens_path = tokens.unwrap_or_else(|| {
        let mut name = file.as_os_str().to_owned();
        name.push(".tokens.csv");
        name.into()
    });
    let tokens_file = create_tokens_file(&tokens_path)
        .with_context(|| format!("creating {}", tokens_path.display()))?;
    let db = Db::connect_with(config.database_url.expose(), 2, config.sqlite_sync).await?;
    db.migrate().await?;
    let bar = if show_progress {
        ProgressBar::new(rows.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} scooters ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut out = std::io::BufWriter::new(tokens_file);
    let imported = register_all(&db, &rows, now, &mut out, |done| bar.inc(done)).await;
    bar.finish();
    db.close().await;
    let imported = imported?;
    Ok(format!(
        "{} scooters registered, {} already known; device tokens in {}",
        imported.registered,
        imported.already_known,
        tokens_path.display()
    ))
}

/// Creates the tokens file, readable by its owner only.
pub fn create_tokens_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_give_the_same_rows() {
        let csv = "scooter_id, lat, lon, range_km, battery_pct\nCS-1, 48.85, 2.35, 20, 80\nCS-2,48.88,2.26,4.5,30\n";
        let json = r#"[{"scooter_id":"CS-1","lat":48.85,"lon":2.35,"range_km":20,"battery_pct":80},
                      {"scooter_id":"CS-2","lat":48.88,"lon":2.26,"range_km":4.5,"battery_pct":30}]"#;
        let rows = parse(csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows, parse(json).unwrap());
        let wrapped = format!(r#"{{"scooters": {json}}}"#);
        assert_eq!(rows, parse(&wrapped).unwrap());
    }

    #[test]
    fn bad_rows_are_named() {
        let header = "scooter_id,lat,lon,range_km,battery_pct\n";
        for (body, expected) in [
            ("CS-1,48.85,2.35,20,80\nCS 2,48.85,2.35,20,80\n", "row 2"),
            ("CS-1,91,2.35,20,80\n", "row 1"),
            ("CS-1,48.85,2.35,-1,80\n", "row 1"),
            (
                "CS-1,48.85,2.35,20,80\nCS-1,48.86,2.35,20,80\n",
                "appears twice",
            ),
            ("CS-1,48.85,2.35,twenty,80\n", "row 1"),
            ("CS-1,48.85,2.35,20\n", "row 1"),
        ] {
            let err = parse(&format!("{header}{body}")).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
        assert!(parse(r#"[{"scooter_id":"CS-1"}]"#).is_err());
    }
}
