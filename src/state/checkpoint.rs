//! The checkpoint protocol: where checkpoints live, what a manifest says, which
//! checkpoint to restore, which to delete. Pure, apart from [`scan`], which only
//! lists a directory; writing and reading the data files is `checkpoint_io`.
//!
//! Layout, under `--data-dir`:
//!
//! ```text
//! checkpoints/
//!   ckpt-00000000001700000000000/   one per checkpoint, named by batch time
//!     <data files>.parquet          written first, each fsynced
//!     manifest.json                 then written to a temp file, fsynced, renamed
//!     COMMIT                        last: the checkpoint is complete
//! ```
//!
//! A directory without `COMMIT`, or whose manifest does not parse, or whose data
//! files are missing or of the wrong size, is torn: it is skipped with a warning.
//! The newest complete checkpoint is restored; one of another format version is
//! refused, never half-loaded. The last [`KEEP`] complete checkpoints are kept.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Complete checkpoints kept.
pub const KEEP: usize = 2;
pub const MANIFEST: &str = "manifest.json";
pub const COMMIT: &str = "COMMIT";

/// One statement of the catalog, in creation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// `source`, `stream` or `query`.
    pub kind: String,
    pub name: String,
    /// A statement that recreates it (`CREATE ... name ...`).
    pub sql: String,
    /// Its zero time, in ms.
    pub zero_time: i64,
}

/// A data file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// File name inside the checkpoint directory.
    pub file: String,
    /// The query (or source) whose state it holds.
    pub owner: String,
    /// What it holds: `keyed-state`, `window-panes`, `window-raw:<input>`.
    pub content: String,
    pub rows: u64,
    pub bytes: u64,
}

/// Where a source's input stands at a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    pub name: String,
    /// The write-ahead log sequence number of the last record in a batch the
    /// checkpoint covers; later records are replayed at recovery.
    pub wal_seq: u64,
    /// A Kafka source's next offset per partition after the batches the
    /// checkpoint covers; a restored source seeks there.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub kafka_offsets: std::collections::BTreeMap<i32, i64>,
    /// A directory source's files read into the batches the checkpoint covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// The last batch the checkpoint covers, in ms.
    pub batch_time: i64,
    pub catalog: Vec<CatalogEntry>,
    /// Every source and its position in its write-ahead log (0 without one).
    #[serde(default)]
    pub sources: Vec<SourcePosition>,
    pub files: Vec<DataFile>,
}

/// What [`scan`] found in one checkpoint directory.
#[derive(Debug, Clone)]
pub struct Found {
    pub dir: PathBuf,
    pub batch_time: i64,
    pub committed: bool,
    /// The manifest, or why it could not be read.
    pub manifest: Result<Manifest, String>,
    /// The manifest's `format_version`, read on its own, so that a manifest of
    /// another version is recognised even when its other fields differ.
    pub version: Option<u32>,
    /// (file name, size) of the files present.
    pub files: Vec<(String, u64)>,
}

/// The decision of [`choose`].
#[derive(Debug)]
pub struct Choice {
    /// The checkpoint to restore, if any.
    pub restore: Option<Found>,
    /// Torn or partial checkpoints skipped, with the reason, for the log.
    pub skipped: Vec<String>,
}

/// Why no checkpoint can be restored although one exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("checkpoint {dir} has format version {found}, but this sluice reads version {expected}; start with another --data-dir, or move the checkpoints away to start empty")]
    Version {
        dir: String,
        found: u32,
        expected: u32,
    },
}

pub fn checkpoints_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoints")
}

pub fn dir_name(batch_time: i64) -> String {
    format!("ckpt-{batch_time:020}")
}

fn parse_dir_name(name: &str) -> Option<i64> {
    name.strip_prefix("ckpt-")?.parse().ok()
}

/// Why a found checkpoint is not complete, if it is not.
fn torn(f: &Found) -> Option<String> {
    if !f.committed {
        return Some("no COMMIT marker (the checkpoint was interrupted)".into());
    }
    let m = match &f.manifest {
        Ok(m) => m,
        Err(e) => return Some(format!("unreadable manifest: {e}")),
    };
    if m.batch_time != f.batch_time {
        return Some(format!(
            "manifest batch time {} does not match the directory",
            m.batch_time
        ));
    }
    for d in &m.files {
        match f.files.iter().find(|(n, _)| *n == d.file) {
            None => return Some(format!("data file {} is missing", d.file)),
            Some((_, size)) if *size != d.bytes => {
                return Some(format!(
                    "data file {} has {size} bytes, the manifest says {}",
                    d.file, d.bytes
                ))
            }
            _ => {}
        }
    }
    None
}

/// Picks the newest complete checkpoint. A complete checkpoint of another format
/// version is an error: restoring an older one instead would silently lose data.
pub fn choose(found: &[Found]) -> Result<Choice, RestoreError> {
    let mut sorted: Vec<&Found> = found.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.batch_time));
    let mut skipped = Vec::new();
    for f in sorted {
        if let Some(found) = f.version.filter(|v| f.committed && *v != FORMAT_VERSION) {
            return Err(RestoreError::Version {
                dir: f.dir.display().to_string(),
                found,
                expected: FORMAT_VERSION,
            });
        }
        if let Some(why) = torn(f) {
            skipped.push(format!("{}: {why}", f.dir.display()));
            continue;
        }
        if let Ok(m) = &f.manifest {
            if m.format_version != FORMAT_VERSION {
                return Err(RestoreError::Version {
                    dir: f.dir.display().to_string(),
                    found: m.format_version,
                    expected: FORMAT_VERSION,
                });
            }
        }
        return Ok(Choice {
            restore: Some(f.clone()),
            skipped,
        });
    }
    Ok(Choice {
        restore: None,
        skipped,
    })
}

/// The directories to delete after a new checkpoint at `newest`: complete ones
/// beyond the last [`KEEP`], and torn ones older than the newest complete one.
pub fn obsolete(found: &[Found]) -> Vec<PathBuf> {
    let mut complete: Vec<&Found> = found.iter().filter(|f| torn(f).is_none()).collect();
    complete.sort_by_key(|f| std::cmp::Reverse(f.batch_time));
    let newest = complete.first().map(|f| f.batch_time);
    let mut out: Vec<PathBuf> = complete.iter().skip(KEEP).map(|f| f.dir.clone()).collect();
    if let Some(newest) = newest {
        out.extend(
            found
                .iter()
                .filter(|f| torn(f).is_some() && f.batch_time < newest)
                .map(|f| f.dir.clone()),
        );
    }
    out
}

#[derive(Deserialize)]
struct VersionOnly {
    format_version: u32,
}

/// Lists the checkpoint directories under `data_dir`.
pub fn scan(data_dir: &Path) -> std::io::Result<Vec<Found>> {
    let root = checkpoints_dir(data_dir);
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(batch_time) = parse_dir_name(&name) else {
            continue;
        };
        let dir = entry.path();
        let mut files = Vec::new();
        for f in std::fs::read_dir(&dir)? {
            let f = f?;
            files.push((
                f.file_name().to_string_lossy().to_string(),
                f.metadata()?.len(),
            ));
        }
        let committed = files.iter().any(|(n, _)| n == COMMIT);
        let raw = std::fs::read(dir.join(MANIFEST)).map_err(|e| e.to_string());
        let manifest = raw
            .clone()
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).map_err(|e| e.to_string()));
        let version = raw
            .ok()
            .and_then(|b| serde_json::from_slice::<VersionOnly>(&b).ok())
            .map(|v| v.format_version);
        out.push(Found {
            dir,
            batch_time,
            committed,
            manifest,
            version,
            files,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(t: i64, version: u32, files: &[(&str, u64)]) -> Manifest {
        Manifest {
            format_version: version,
            batch_time: t,
            catalog: Vec::new(),
            sources: Vec::new(),
            files: files
                .iter()
                .map(|(f, b)| DataFile {
                    file: f.to_string(),
                    owner: "q".into(),
                    content: "keyed-state".into(),
                    rows: 1,
                    bytes: *b,
                })
                .collect(),
        }
    }

    fn found(t: i64, committed: bool, m: Result<Manifest, String>, files: &[(&str, u64)]) -> Found {
        let version = m.as_ref().ok().map(|m| m.format_version);
        Found {
            version,
            dir: PathBuf::from(dir_name(t)),
            batch_time: t,
            committed,
            manifest: m,
            files: files.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
        }
    }

    #[test]
    fn restores_the_newest_complete_checkpoint() {
        let all = vec![
            found(
                1000,
                true,
                Ok(manifest(1000, 1, &[("a", 10)])),
                &[("a", 10), (COMMIT, 0)],
            ),
            found(
                2000,
                true,
                Ok(manifest(2000, 1, &[("a", 10)])),
                &[("a", 10), (COMMIT, 0)],
            ),
        ];
        let c = choose(&all).unwrap();
        assert_eq!(c.restore.unwrap().batch_time, 2000);
        assert!(c.skipped.is_empty());
    }

    #[test]
    fn skips_torn_and_partial_checkpoints() {
        let all = vec![
            found(
                1000,
                true,
                Ok(manifest(1000, 1, &[("a", 10)])),
                &[("a", 10)],
            ),
            // data written, manifest renamed, killed before COMMIT
            found(
                2000,
                false,
                Ok(manifest(2000, 1, &[("a", 10)])),
                &[("a", 10)],
            ),
            // killed while writing a data file
            found(3000, true, Ok(manifest(3000, 1, &[("a", 10)])), &[("a", 4)]),
            // killed before the manifest
            found(4000, false, Err("No such file".into()), &[("a", 10)]),
            // a data file lost
            found(
                5000,
                true,
                Ok(manifest(5000, 1, &[("a", 10), ("b", 3)])),
                &[("a", 10)],
            ),
        ];
        let c = choose(&all).unwrap();
        assert_eq!(c.restore.unwrap().batch_time, 1000);
        assert_eq!(c.skipped.len(), 4);
        assert!(
            c.skipped[0].contains("data file b is missing"),
            "{:?}",
            c.skipped
        );
        assert!(c.skipped[3].contains("no COMMIT marker"), "{:?}", c.skipped);
    }

    #[test]
    fn nothing_to_restore_on_an_empty_or_all_torn_directory() {
        assert!(choose(&[]).unwrap().restore.is_none());
        let all = vec![found(1000, false, Err("missing".into()), &[])];
        assert!(choose(&all).unwrap().restore.is_none());
    }

    #[test]
    fn another_format_version_is_refused_not_skipped() {
        let all = vec![
            found(1000, true, Ok(manifest(1000, 1, &[])), &[]),
            found(2000, true, Ok(manifest(2000, 99, &[])), &[]),
        ];
        let e = choose(&all).unwrap_err();
        assert!(
            e.to_string()
                .contains("has format version 99, but this sluice reads version 1"),
            "{e}"
        );
    }

    #[test]
    fn a_manifest_of_another_version_that_does_not_parse_is_refused_too() {
        let mut f = found(2000, true, Err("unknown field `shards`".into()), &[]);
        f.version = Some(2);
        let all = vec![found(1000, true, Ok(manifest(1000, 1, &[])), &[]), f];
        assert!(matches!(
            choose(&all),
            Err(RestoreError::Version { found: 2, .. })
        ));
    }

    #[test]
    fn keeps_the_last_two_complete_and_drops_older_torn_ones() {
        let ok = |t| found(t, true, Ok(manifest(t, 1, &[])), &[]);
        let all = vec![
            ok(1000),
            found(1500, false, Err("x".into()), &[]),
            ok(2000),
            ok(3000),
            found(4000, false, Err("x".into()), &[]),
        ];
        let mut gone: Vec<String> = obsolete(&all)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        gone.sort();
        assert_eq!(gone, [dir_name(1000), dir_name(1500)]);
    }
}
