//! `compactor`: each closed partition of the raw lake in S3 becomes Parquet files under
//! `parquet/<dataset>/dt=…/hour=…/` (one, unless it exceeds `sdp_lake::compact::TARGET_FILE_BYTES`),
//! and stays exactly the set of rows its raw objects hold.
//!
//! The protocol, per partition (S3 has no rename, so every step is a whole-object PUT or DELETE):
//! 1. `_manifest.json` in the Parquet partition names the current files and the raw objects (key
//!    and ETag) they hold. Raw objects not in it are new: none means nothing to do. Raw objects
//!    that expired (the lifecycle rule) are simply absent from the listing and change nothing.
//! 2. A lock object, `_compacting`, created with `If-None-Match: *`, keeps a second run off the
//!    partition while this one works, so concurrent runs cannot write two generations. A lock
//!    older than a run can live (15 minutes, the Lambda limit) is from a dead run and is removed.
//! 3. The new files hold the current files' rows plus the new objects' rows, merged by the
//!    dataset's rule (distinct rows, or the latest counters of a key): the same bytes a compaction
//!    of all the raw objects at once would give. Their names are a hash of the raw objects they
//!    hold and their place in the sort order, and each is written with `If-None-Match: *`: a rerun
//!    that died after writing them finds them in place. The raw objects are fetched and parsed one
//!    at a time, so memory holds the partition's rows (about its raw size) and one object.
//! 4. Then the manifest is written, and only then the previous files are deleted: nothing is
//!    removed before its replacement is durable. (Between those PUTs and those DELETEs, a query
//!    can see both generations; S3 has no atomic swap of objects, and the window is a few requests
//!    long and only on late data: the first compaction of an hour has no previous files.)
//!
//! Files whose names start with `_` are ignored by Athena, so the manifest and the lock are not
//! table data. A line that is not a valid row is reported (input, line, reason: in the log, the
//! manifest and the run's answer) and the rest of its object is kept.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use sdp_aws::s3::{Fetched, Listed, Precondition, S3Objects, Written};
use sdp_core::lake::{Dataset, Format, DATASETS};
use sdp_core::model::stable_hash;
use sdp_core::ports::StoreError;
use sdp_lake::compact::{CompactError, Partition, RejectedLine, TARGET_FILE_BYTES};

/// A lock older than this was left by a run that died (a Lambda run lives 15 minutes at most).
const STALE_LOCK_MS: i64 = 16 * 60 * 1000;
/// Rejected lines kept in a manifest and a run's answer (all are logged).
const REJECTED_KEPT: usize = 100;

#[derive(Debug, Clone)]
pub struct CompactorSettings {
    /// How long after its hour ends a partition is closed: Firehose buffers up to 15 minutes.
    pub close_after_ms: i64,
    /// Where a partition's output is cut into another file.
    pub target_file_bytes: usize,
}

impl Default for CompactorSettings {
    fn default() -> Self {
        CompactorSettings {
            close_after_ms: 20 * 60 * 1000,
            target_file_bytes: TARGET_FILE_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompactorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("compacting s3://{bucket}/{partition} failed: {source}")]
    Compact {
        bucket: String,
        partition: String,
        source: CompactError,
    },
    #[error("compaction manifest s3://{bucket}/{key}: {reason}")]
    Manifest {
        bucket: String,
        key: String,
        reason: String,
    },
}

/// What a Parquet partition holds: its files and the raw objects in them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// In sort order.
    pub files: Vec<String>,
    /// "key etag" of every raw object the files hold, sorted.
    pub inputs: BTreeSet<String>,
    pub rows: usize,
    pub rejected_lines: usize,
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rejected {
    pub input: String,
    pub line: usize,
    pub reason: String,
}

impl From<&RejectedLine> for Rejected {
    fn from(line: &RejectedLine) -> Self {
        Rejected {
            input: line.input.clone(),
            line: line.line,
            reason: line.reason.clone(),
        }
    }
}

/// A partition's key suffix, `dt=…/hour=…/`, from an object key under a dataset prefix.
fn partition_of<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(prefix)?;
    let dt = rest.strip_prefix("dt=")?.get(..10)?;
    let hour = rest.get(13..)?.strip_prefix("/hour=")?.get(..2)?;
    (dt.len() == 10 && hour.len() == 2).then(|| &rest[..22])
}

/// Whether the partition `dt=YYYY-MM-DD/hour=HH/` is closed at `now_ms`.
fn closed(partition: &str, now_ms: i64, close_after_ms: i64) -> bool {
    let (Some(dt), Some(hour)) = (partition.get(3..13), partition.get(19..21)) else {
        return false;
    };
    let Ok(start) = format!("{dt}T{hour}:00:00Z").parse::<jiff::Timestamp>() else {
        return false;
    };
    start.as_millisecond() + 3_600_000 + close_after_ms <= now_ms
}

fn input_id(object: &Listed) -> String {
    format!("{} {}", object.key, object.etag)
}

/// One run at `now_ms`; a summary of what it did (also the invocation's answer).
pub async fn run(
    objects: &S3Objects,
    settings: &CompactorSettings,
    now_ms: i64,
) -> Result<Value, CompactorError> {
    let mut compacted = Vec::new();
    let mut busy = Vec::new();
    let mut rejected = Vec::new();
    for dataset in &DATASETS {
        let raw_prefix = dataset.prefix(Format::Raw);
        let parquet_prefix = dataset.prefix(Format::Parquet);
        let mut raw: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
        for object in objects.list(&raw_prefix).await? {
            if let Some(partition) = partition_of(&raw_prefix, &object.key) {
                raw.entry(partition.to_owned()).or_default().push(object);
            }
        }
        for (partition, inputs) in raw {
            if !closed(&partition, now_ms, settings.close_after_ms) {
                continue;
            }
            let target = format!("{parquet_prefix}{partition}");
            match compact_partition(objects, settings, dataset, &target, &inputs, now_ms).await? {
                Outcome::UpToDate => {}
                Outcome::Busy => busy.push(target),
                Outcome::Compacted {
                    manifest,
                    new_inputs,
                    rejected: this_run,
                } => {
                    rejected.extend(this_run);
                    compacted.push(json!({
                        "partition": target,
                        "files": manifest.files,
                        "rows": manifest.rows,
                        "new_inputs": new_inputs,
                        "rejected_lines": manifest.rejected_lines,
                    }));
                }
            }
        }
    }
    rejected.truncate(REJECTED_KEPT);
    let summary = json!({ "compacted": compacted, "busy": busy, "rejected": rejected });
    tracing::info!(%summary, "compactor run finished");
    Ok(summary)
}

enum Outcome {
    UpToDate,
    /// Another run holds the partition.
    Busy,
    Compacted {
        manifest: Manifest,
        new_inputs: usize,
        /// The lines this run rejected (the manifest keeps those of every run).
        rejected: Vec<Rejected>,
    },
}

async fn read_manifest(objects: &S3Objects, key: &str) -> Result<Option<Manifest>, CompactorError> {
    match objects.get(key, None).await? {
        Fetched::Found(object) => serde_json::from_slice(&object.bytes)
            .map(Some)
            .map_err(|e| CompactorError::Manifest {
                bucket: objects.bucket().to_owned(),
                key: key.to_owned(),
                reason: e.to_string(),
            }),
        Fetched::Missing | Fetched::Unchanged => Ok(None),
    }
}

async fn compact_partition(
    objects: &S3Objects,
    settings: &CompactorSettings,
    dataset: &Dataset,
    target: &str,
    inputs: &[Listed],
    now_ms: i64,
) -> Result<Outcome, CompactorError> {
    let manifest_key = format!("{target}_manifest.json");
    let new = |manifest: &Option<Manifest>| -> Vec<Listed> {
        inputs
            .iter()
            .filter(|o| {
                manifest
                    .as_ref()
                    .is_none_or(|m| !m.inputs.contains(&input_id(o)))
            })
            .cloned()
            .collect()
    };
    if new(&read_manifest(objects, &manifest_key).await?).is_empty() {
        return Ok(Outcome::UpToDate);
    }

    let lock = format!("{target}_compacting");
    let stamp = json!({ "started_at_ms": now_ms }).to_string().into_bytes();
    if objects
        .put(&lock, stamp, "application/json", Precondition::Absent)
        .await?
        == Written::Conflict
    {
        let held_since = objects
            .list(&lock)
            .await?
            .first()
            .map(|o| o.last_modified_ms);
        if held_since.is_some_and(|t| t + STALE_LOCK_MS < now_ms) {
            tracing::warn!(lock, "removing a lock left by a run that died");
            objects.delete(&lock).await?;
        }
        return Ok(Outcome::Busy);
    }
    let result = compact_locked(objects, settings, dataset, target, &manifest_key, new).await;
    // Released whatever happened; if this delete fails, the lock goes stale and is cleared later.
    let released = objects.delete(&lock).await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

async fn compact_locked(
    objects: &S3Objects,
    settings: &CompactorSettings,
    dataset: &Dataset,
    target: &str,
    manifest_key: &str,
    new: impl Fn(&Option<Manifest>) -> Vec<Listed>,
) -> Result<Outcome, CompactorError> {
    // Read again under the lock: a run that held it may have just compacted these objects.
    let previous = read_manifest(objects, manifest_key).await?;
    let fresh = new(&previous);
    if fresh.is_empty() {
        return Ok(Outcome::UpToDate);
    }
    let failed = |source| CompactorError::Compact {
        bucket: objects.bucket().to_owned(),
        partition: target.to_owned(),
        source,
    };
    let mut partition = Partition::new(dataset);
    for file in previous.iter().flat_map(|m| &m.files) {
        let key = format!("{target}{file}");
        match objects.get(&key, None).await? {
            Fetched::Found(object) => partition.add_parquet(object.bytes).map_err(failed)?,
            // Compacting without it would drop its rows while the manifest says they are held.
            Fetched::Missing | Fetched::Unchanged => {
                return Err(CompactorError::Manifest {
                    bucket: objects.bucket().to_owned(),
                    key: manifest_key.to_owned(),
                    reason: format!("names {file}, which is missing"),
                })
            }
        }
    }
    for object in &fresh {
        if let Fetched::Found(found) = objects.get(&object.key, None).await? {
            partition
                .add_raw(&object.key, &found.bytes)
                .map_err(failed)?;
        }
    }
    let out = partition
        .finish(settings.target_file_bytes)
        .map_err(failed)?;
    for line in &out.rejected {
        tracing::warn!(input = %line.input, line = line.line, reason = %line.reason, "line rejected");
    }

    let mut covered = previous
        .as_ref()
        .map(|m| m.inputs.clone())
        .unwrap_or_default();
    covered.extend(fresh.iter().map(input_id));
    let fingerprint: String = covered.iter().map(|i| format!("{i}\n")).collect();
    let generation = stable_hash(fingerprint.as_bytes());
    let mut files = Vec::with_capacity(out.files.len());
    for (index, bytes) in out.files.into_iter().enumerate() {
        let file = format!("part-{generation:016x}-{index:05}.parquet");
        // Written before anything refers to it; a rerun that finds it in place has the same bytes.
        objects
            .put(
                &format!("{target}{file}"),
                bytes,
                "application/vnd.apache.parquet",
                Precondition::Absent,
            )
            .await?;
        files.push(file);
    }
    let mut manifest = Manifest {
        files,
        inputs: covered,
        rows: out.rows,
        rejected_lines: previous.as_ref().map_or(0, |m| m.rejected_lines) + out.rejected.len(),
        rejected: previous.map(|m| m.rejected).unwrap_or_default(),
    };
    manifest
        .rejected
        .extend(out.rejected.iter().map(Rejected::from));
    manifest.rejected.truncate(REJECTED_KEPT);
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| CompactorError::Manifest {
        bucket: objects.bucket().to_owned(),
        key: manifest_key.to_owned(),
        reason: e.to_string(),
    })?;
    objects
        .put(manifest_key, bytes, "application/json", Precondition::None)
        .await?;
    // Only now, with the new files and their manifest durable, the older generations go.
    for old in objects.list(target).await? {
        let name = &old.key[target.len()..];
        if name.starts_with("part-") && !manifest.files.iter().any(|f| f == name) {
            objects.delete(&old.key).await?;
        }
    }
    Ok(Outcome::Compacted {
        manifest,
        new_inputs: fresh.len(),
        rejected: out.rejected.iter().map(Rejected::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_read_from_keys_and_close_after_their_hour_and_the_grace() {
        let prefix = "raw/bcns/";
        assert_eq!(
            partition_of(
                prefix,
                "raw/bcns/dt=2026-11-22/hour=07/sdp-raw-bcns-1-2026.gz"
            ),
            Some("dt=2026-11-22/hour=07/")
        );
        assert_eq!(partition_of(prefix, "raw/bcns/other/key"), None);
        assert_eq!(partition_of(prefix, "raw/bcns/dt=2026-11-22/"), None);
        let eight = 1_795_334_400_000; // 2026-11-22T08:00:00Z, when hour 07 ends
        assert!(!closed(
            "dt=2026-11-22/hour=07/",
            eight + 19 * 60_000,
            20 * 60_000
        ));
        assert!(closed(
            "dt=2026-11-22/hour=07/",
            eight + 20 * 60_000,
            20 * 60_000
        ));
        assert!(!closed("dt=2026-11-22/hour=xx/", eight * 2, 0));
    }
}
