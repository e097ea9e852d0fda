//! `compactor`: each closed partition of the raw lake in S3 becomes one Parquet file under
//! `parquet/<dataset>/dt=…/hour=…/`, and stays exactly the set of rows its raw objects hold.
//!
//! The protocol, per partition (S3 has no rename, so every step is a whole-object PUT or DELETE):
//! 1. `_manifest.json` in the Parquet partition names the current file and the raw objects (key
//!    and ETag) it holds. Raw objects not in it are new: none means nothing to do. Raw objects
//!    that expired (the lifecycle rule) are simply absent from the listing and change nothing.
//! 2. A lock object, `_compacting`, created with `If-None-Match: *`, keeps a second run off the
//!    partition while this one works, so concurrent runs cannot write two generations. A lock
//!    older than a run can live (15 minutes, the Lambda limit) is from a dead run and is removed.
//! 3. The new file is the current file's rows plus the new objects' rows, merged by the dataset's
//!    rule (distinct rows, or the latest counters of a key): the same bytes a compaction of all
//!    the raw objects at once would give. Its name is a hash of the raw objects it holds, and it
//!    is written with `If-None-Match: *`: a rerun that died after writing it finds it in place.
//! 4. Then the manifest is written, and only then the previous file is deleted: nothing is
//!    removed before its replacement is durable. (Between that PUT and that DELETE, a query can
//!    see both files of the partition; S3 has no atomic swap of two objects, and the window is one
//!    request long and only on late data: the first compaction of an hour has no previous file.)
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
use sdp_lake::compact::{compact_onto, CompactError, RejectedLine};

/// A lock older than this was left by a run that died (a Lambda run lives 15 minutes at most).
const STALE_LOCK_MS: i64 = 16 * 60 * 1000;
/// Rejected lines kept in a manifest and a run's answer (all are logged).
const REJECTED_KEPT: usize = 100;

#[derive(Debug, Clone)]
pub struct CompactorSettings {
    /// How long after its hour ends a partition is closed: Firehose buffers up to 15 minutes.
    pub close_after_ms: i64,
}

impl Default for CompactorSettings {
    fn default() -> Self {
        CompactorSettings {
            close_after_ms: 20 * 60 * 1000,
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

/// What a Parquet partition holds: its file and the raw objects in it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub file: String,
    /// "key etag" of every raw object the file holds, sorted.
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
            match compact_partition(objects, dataset, &target, &inputs, now_ms).await? {
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
                        "file": manifest.file,
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
    let result = compact_locked(objects, dataset, target, &manifest_key, new).await;
    // Released whatever happened; if this delete fails, the lock goes stale and is cleared later.
    let released = objects.delete(&lock).await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

async fn compact_locked(
    objects: &S3Objects,
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
    let previous_file = match &previous {
        Some(manifest) => match objects
            .get(&format!("{target}{}", manifest.file), None)
            .await?
        {
            Fetched::Found(object) => Some(object.bytes),
            Fetched::Missing | Fetched::Unchanged => None,
        },
        None => None,
    };
    let mut raw = Vec::with_capacity(fresh.len());
    for object in &fresh {
        if let Fetched::Found(found) = objects.get(&object.key, None).await? {
            raw.push((object.key.clone(), found.bytes));
        }
    }
    let out = compact_onto(dataset, previous_file.as_deref(), &raw).map_err(|source| {
        CompactorError::Compact {
            bucket: objects.bucket().to_owned(),
            partition: target.to_owned(),
            source,
        }
    })?;
    for line in &out.rejected {
        tracing::warn!(input = %line.input, line = line.line, reason = %line.reason, "line rejected");
    }

    let mut covered = previous
        .as_ref()
        .map(|m| m.inputs.clone())
        .unwrap_or_default();
    covered.extend(fresh.iter().map(input_id));
    let fingerprint: String = covered.iter().map(|i| format!("{i}\n")).collect();
    let file = format!("part-{:016x}.parquet", stable_hash(fingerprint.as_bytes()));
    // Written before anything refers to it; a rerun that finds it in place has the same bytes.
    objects
        .put(
            &format!("{target}{file}"),
            out.parquet,
            "application/vnd.apache.parquet",
            Precondition::Absent,
        )
        .await?;
    let mut manifest = Manifest {
        file: file.clone(),
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
    // Only now, with the new file and its manifest durable, the older generations go.
    for old in objects.list(target).await? {
        let name = &old.key[target.len()..];
        if name.starts_with("part-") && name != file {
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
