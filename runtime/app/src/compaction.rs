//! Compaction: each closed partition of the raw lake becomes Parquet files under
//! `parquet/<dataset>/dt=…/hour=…/` (one, unless it exceeds `sdp_lake::compact::TARGET_FILE_BYTES`),
//! and stays exactly the set of rows its raw objects hold. Run by the compactor Lambda on S3 and by
//! `sdp local` on its data directory, through the same [`ObjectStore`] protocol: the same files,
//! names and manifests on both.
//!
//! The protocol, per partition (S3 has no rename, so every step is a whole-object PUT or DELETE):
//! 1. `_manifest.json` in the Parquet partition names the current files and the raw objects (key
//!    and ETag) they hold. Raw objects not in it are new: none means nothing to do. Raw objects
//!    that expired (the lifecycle rule) are simply absent from the listing and change nothing.
//! 2. A lock object, `_compacting`, created with `If-None-Match: *`, keeps a second run off the
//!    partition while this one works, so concurrent runs cannot write two generations. A lock
//!    older than a run can live (15 minutes, the Lambda limit) is from a dead run: it is taken
//!    over by a write conditional on its entity tag (`If-Match`), so of two runs that find the
//!    same dead lock only one takes it, and neither removes a lock that a live run holds.
//! 3. The new files hold the current files' rows plus the new objects' rows, merged by the
//!    dataset's rule (distinct rows, or the latest counters of a key): the same bytes a compaction
//!    of all the raw objects at once would give. Their names are a hash of the raw objects they
//!    hold and their place in the sort order, and each is written with `If-None-Match: *`: a rerun
//!    that died after writing them finds them in place. The raw objects are fetched and parsed one
//!    at a time, so memory holds the partition's rows (about its raw size) and one object.
//! 4. Then the manifest is written, and only then the previous files are deleted: nothing is
//!    removed before its replacement is durable. Readers are held off meanwhile where the store
//!    can do it ([`ObjectStore::hold_readers`]: a directory's swap lock). A run that died (or
//!    whose DELETE failed) between the manifest and the deletes leaves a generation the manifest
//!    no longer names, which readers would count twice: every run lists each dataset's Parquet
//!    files once, and a partition holding a `part-` file that its manifest does not name is swept
//!    under the lock. On S3, between those PUTs and those DELETEs, a query can see both
//!    generations: S3 has no atomic swap of objects, and the window is a few requests long and
//!    only on late data (the first compaction of an hour has no previous files).
//!
//! Files whose names start with `_` are ignored by Athena, so the manifest and the lock are not
//! table data. A line that is not a valid row is reported (input, line, reason: in the log, the
//! manifest and the run's answer) and the rest of its object is kept.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use sdp_core::lake::{Dataset, Format, DATASETS};
use sdp_core::model::stable_hash;
use sdp_core::ports::{Fetched, Listed, ObjectStore, Precondition, StoreError, Written};
use sdp_lake::compact::{CompactError, Partition, RejectedLine, TARGET_FILE_BYTES};

/// A lock older than this was left by a run that died (a Lambda run lives 15 minutes at most; a
/// local run, a few seconds).
const STALE_LOCK_MS: i64 = 16 * 60 * 1000;
/// The object in a partition's Parquet prefix that a run holds while it works.
const LOCK: &str = "_compacting";
/// Rejected lines kept in a manifest and a run's answer (all are logged).
const REJECTED_KEPT: usize = 100;

#[derive(Debug, Clone)]
pub struct CompactionSettings {
    /// How long after its hour ends a partition is closed: Firehose buffers up to 15 minutes. The
    /// same on one machine, so a local lake closes its hours when a deployed one would.
    pub close_after_ms: i64,
    /// Where a partition's output is cut into another file.
    pub target_file_bytes: usize,
}

impl Default for CompactionSettings {
    fn default() -> Self {
        CompactionSettings {
            close_after_ms: 20 * 60 * 1000,
            target_file_bytes: TARGET_FILE_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Some partitions failed; every other partition of the run was still compacted. The
    /// summary (as [`run`] returns it) names each failure.
    #[error("compaction failed in {} partition(s): {}", .failed.len(), .failed.join("; "))]
    Partitions { failed: Vec<String>, summary: Value },
    #[error("compacting {location}/{partition} failed: {source}")]
    Compact {
        location: String,
        partition: String,
        source: CompactError,
    },
    #[error("compaction manifest {location}/{key}: {reason}")]
    Manifest {
        location: String,
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
pub async fn run<O: ObjectStore>(
    objects: &O,
    settings: &CompactionSettings,
    now_ms: i64,
) -> Result<Value, CompactionError> {
    run_until(objects, settings, now_ms, &|| false).await
}

/// One run at `now_ms` that starts no partition once `out_of_time()` says so (a Lambda's deadline
/// draws near): the partitions left are named under `deferred` in the summary, and the next run
/// starts with them, since partitions run oldest hour first across every dataset, the order in
/// which their raw objects expire.
pub async fn run_until<O: ObjectStore>(
    objects: &O,
    settings: &CompactionSettings,
    now_ms: i64,
    out_of_time: &(dyn Fn() -> bool + Sync),
) -> Result<Value, CompactionError> {
    let mut compacted = Vec::new();
    let mut swept = Vec::new();
    let mut busy = Vec::new();
    let mut deferred = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut rejected = Vec::new();
    // (partition, dataset) → its raw objects and Parquet files.
    let mut work: BTreeMap<(String, usize), (Vec<Listed>, Vec<String>)> = BTreeMap::new();
    for (index, dataset) in DATASETS.iter().enumerate() {
        let raw_prefix = dataset.prefix(Format::Raw);
        let parquet_prefix = dataset.prefix(Format::Parquet);
        for object in objects.list(&raw_prefix).await? {
            if let Some(partition) = partition_of(&raw_prefix, &object.key) {
                if closed(partition, now_ms, settings.close_after_ms) {
                    work.entry((partition.to_owned(), index))
                        .or_default()
                        .0
                        .push(object);
                }
            }
        }
        // Every Parquet file of the dataset, by partition: one listing finds a generation that a
        // run which died before its deletes left behind.
        for object in objects.list(&parquet_prefix).await? {
            if let Some(partition) = partition_of(&parquet_prefix, &object.key) {
                let name = &object.key[parquet_prefix.len() + partition.len()..];
                if let Some((_, files)) = work.get_mut(&(partition.to_owned(), index)) {
                    if name.starts_with("part-") {
                        files.push(name.to_owned());
                    }
                }
            }
        }
    }
    for ((partition, index), (inputs, files)) in work {
        let dataset = &DATASETS[index];
        let target = format!("{}{partition}", dataset.prefix(Format::Parquet));
        if out_of_time() {
            deferred.push(target);
            continue;
        }
        let partition = PartitionFiles {
            target: &target,
            inputs: &inputs,
            files: &files,
        };
        // A partition that fails (a manifest naming a missing file, a corrupt object, a store
        // error) fails alone: the others are not starved behind it until their raw expires.
        let outcome = match compact_partition(objects, settings, dataset, &partition, now_ms).await
        {
            Ok(outcome) => outcome,
            Err(err) => {
                let error = sdp_core::ports::with_causes(&err);
                tracing::error!(partition = %target, %error, "compacting a partition failed");
                failed.push((target, error));
                continue;
            }
        };
        match outcome {
            Outcome::UpToDate => {}
            Outcome::Swept { removed } => swept.push(json!({
                "partition": target,
                "removed": removed,
            })),
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
    rejected.truncate(REJECTED_KEPT);
    let summary = json!({
        "compacted": compacted,
        "swept": swept,
        "busy": busy,
        "deferred": deferred,
        "rejected": rejected,
        "failed": failed
            .iter()
            .map(|(partition, error)| json!({ "partition": partition, "error": error }))
            .collect::<Vec<_>>(),
    });
    tracing::info!(%summary, "compaction run finished");
    if failed.is_empty() {
        return Ok(summary);
    }
    Err(CompactionError::Partitions {
        failed: failed
            .into_iter()
            .map(|(partition, error)| format!("{partition}: {error}"))
            .collect(),
        summary,
    })
}

/// After a restart of the only process that compacts this lake (`sdp local`, which holds its data
/// directory's lock), what its runs left when it died: their partition locks are released, and
/// the Parquet files no manifest names (a run died between its files and its manifest, or before
/// its deletes) are removed, so a query sees one generation of each partition from the start,
/// not only once the next run has been through. The keys removed. Never on a lake that another
/// process may be compacting (on S3, runs take stale locks over instead).
pub async fn recover_after_crash<O: ObjectStore>(
    objects: &O,
) -> Result<Vec<String>, CompactionError> {
    let _readers_held = objects.hold_readers().await?;
    let mut removed = Vec::new();
    for dataset in &DATASETS {
        let prefix = dataset.prefix(Format::Parquet);
        let mut partitions: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
        for object in objects.list(&prefix).await? {
            if let Some(partition) = partition_of(&prefix, &object.key) {
                partitions
                    .entry(format!("{prefix}{partition}"))
                    .or_default()
                    .push(object);
            }
        }
        for (target, found) in partitions {
            let lock = format!("{target}{LOCK}");
            if found.iter().any(|o| o.key == lock) {
                objects.delete(&lock).await?;
                removed.push(lock);
            }
            let manifest = read_manifest(objects, &format!("{target}_manifest.json")).await?;
            let older = remove_older_generations(objects, &target, manifest.as_ref()).await?;
            removed.extend(older.into_iter().map(|name| format!("{target}{name}")));
        }
    }
    Ok(removed)
}

/// A closed partition as a run found it.
struct PartitionFiles<'a> {
    /// Its Parquet prefix, `parquet/<dataset>/dt=…/hour=…/`.
    target: &'a str,
    /// Its raw objects.
    inputs: &'a [Listed],
    /// The names of its `part-` files.
    files: &'a [String],
}

enum Outcome {
    UpToDate,
    /// Files of an older generation, left by a run that died before deleting them, were removed.
    Swept {
        removed: Vec<String>,
    },
    /// Another run holds the partition.
    Busy,
    Compacted {
        manifest: Manifest,
        new_inputs: usize,
        /// The lines this run rejected (the manifest keeps those of every run).
        rejected: Vec<Rejected>,
    },
}

async fn read_manifest<O: ObjectStore>(
    objects: &O,
    key: &str,
) -> Result<Option<Manifest>, CompactionError> {
    match objects.get(key, None).await? {
        Fetched::Found(object) => serde_json::from_slice(&object.bytes)
            .map(Some)
            .map_err(|e| CompactionError::Manifest {
                location: objects.location(),
                key: key.to_owned(),
                reason: e.to_string(),
            }),
        Fetched::Missing | Fetched::Unchanged => Ok(None),
    }
}

async fn compact_partition<O: ObjectStore>(
    objects: &O,
    settings: &CompactionSettings,
    dataset: &Dataset,
    partition: &PartitionFiles<'_>,
    now_ms: i64,
) -> Result<Outcome, CompactionError> {
    let target = partition.target;
    let manifest_key = format!("{target}_manifest.json");
    let new = |manifest: &Option<Manifest>| -> Vec<Listed> {
        partition
            .inputs
            .iter()
            .filter(|o| {
                manifest
                    .as_ref()
                    .is_none_or(|m| !m.inputs.contains(&input_id(o)))
            })
            .cloned()
            .collect()
    };
    let manifest = read_manifest(objects, &manifest_key).await?;
    let unnamed = |manifest: &Option<Manifest>| {
        partition
            .files
            .iter()
            .any(|f| manifest.as_ref().is_none_or(|m| !m.files.contains(f)))
    };
    if new(&manifest).is_empty() && !unnamed(&manifest) {
        return Ok(Outcome::UpToDate);
    }

    let lock = format!("{target}{LOCK}");
    if !take_lock(objects, &lock, now_ms).await? {
        return Ok(Outcome::Busy);
    }
    let result = compact_locked(objects, settings, dataset, target, &manifest_key, new).await;
    // Released whatever happened; if this delete fails, the lock goes stale and is taken over.
    let released = objects.delete(&lock).await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

/// Takes the partition's lock: created if there is none; taken over if a run that died left it,
/// by a write conditional on that lock's entity tag, so that of two runs finding the same dead
/// lock only one takes it. False if a live run holds it (or another run took it over first).
async fn take_lock<O: ObjectStore>(
    objects: &O,
    lock: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let stamp = || json!({ "started_at_ms": now_ms }).to_string().into_bytes();
    if let Written::Done(_) = objects
        .put(lock, stamp(), "application/json", Precondition::Absent)
        .await?
    {
        return Ok(true);
    }
    let Some(held) = objects
        .list(lock)
        .await?
        .into_iter()
        .find(|o| o.key == lock)
    else {
        return Ok(false); // released meanwhile: the next run will see what it did
    };
    if held.last_modified_ms + STALE_LOCK_MS >= now_ms {
        return Ok(false);
    }
    tracing::warn!(lock, "taking over a lock left by a run that died");
    let taken = objects
        .put(
            lock,
            stamp(),
            "application/json",
            Precondition::Matches(&held.etag),
        )
        .await?;
    Ok(matches!(taken, Written::Done(_)))
}

/// Deletes every `part-` file under `target` that `manifest` does not name (all of them if there
/// is no manifest: a first run died before writing it); their names.
async fn remove_older_generations<O: ObjectStore>(
    objects: &O,
    target: &str,
    manifest: Option<&Manifest>,
) -> Result<Vec<String>, StoreError> {
    let named = |name: &str| manifest.is_some_and(|m| m.files.iter().any(|f| f == name));
    let mut removed = Vec::new();
    for old in objects.list(target).await? {
        let name = &old.key[target.len()..];
        if name.starts_with("part-") && !named(name) {
            objects.delete(&old.key).await?;
            removed.push(name.to_owned());
        }
    }
    Ok(removed)
}

async fn compact_locked<O: ObjectStore>(
    objects: &O,
    settings: &CompactionSettings,
    dataset: &Dataset,
    target: &str,
    manifest_key: &str,
    new: impl Fn(&Option<Manifest>) -> Vec<Listed>,
) -> Result<Outcome, CompactionError> {
    // Read again under the lock: a run that held it may have just compacted these objects.
    let previous = read_manifest(objects, manifest_key).await?;
    let fresh = new(&previous);
    if fresh.is_empty() {
        // Nothing new: only files the manifest no longer names, if any, are left to remove.
        let removed = match &previous {
            Some(manifest) => {
                let _readers_held = objects.hold_readers().await?;
                remove_older_generations(objects, target, Some(manifest)).await?
            }
            None => Vec::new(),
        };
        return Ok(if removed.is_empty() {
            Outcome::UpToDate
        } else {
            tracing::warn!(target, ?removed, "removed files of an older generation");
            Outcome::Swept { removed }
        });
    }
    let failed = |source| CompactionError::Compact {
        location: objects.location(),
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
                return Err(CompactionError::Manifest {
                    location: objects.location(),
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
    // From the first new file to the last old one gone, readers that can be held off are.
    let readers_held = objects.hold_readers().await?;
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
    sdp_core::crash::point("compaction.after_files");
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
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| CompactionError::Manifest {
        location: objects.location(),
        key: manifest_key.to_owned(),
        reason: e.to_string(),
    })?;
    objects
        .put(manifest_key, bytes, "application/json", Precondition::None)
        .await?;
    sdp_core::crash::point("compaction.after_manifest");
    // Only now, with the new files and their manifest durable, the older generations go.
    remove_older_generations(objects, target, Some(&manifest)).await?;
    drop(readers_held);
    Ok(Outcome::Compacted {
        manifest,
        new_inputs: fresh.len(),
        rejected: out.rejected.iter().map(Rejected::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sdp_core::memory::{ready, Call, MemoryObjects};

    /// 2026-11-22T00:00:00Z; the runs happen at 13:00, when hour 10 is closed.
    const DAY_MS: i64 = 1_795_305_600_000;
    const NOW_MS: i64 = DAY_MS + 13 * 3_600_000;
    const PARTITION: &str = "parquet/bcns/dt=2026-11-22/hour=10/";

    fn land(objects: &MemoryObjects, name: &str, txs: &[&str]) {
        let ts = DAY_MS + 10 * 3_600_000 + 1_000;
        let lines: Vec<String> = txs
            .iter()
            .map(|tx| {
                json!({"tx_id": tx, "type": "bid", "ts": ts, "received_at": ts + 5,
                       "campaign_item_id": 7, "app_uid": "u", "creative_id": "c",
                       "creative_category": "k", "domain": "d.example"})
                .to_string()
            })
            .collect();
        let key = format!("raw/bcns/dt=2026-11-22/hour=10/{name}.json");
        objects.insert_at(&key, (lines.join("\n") + "\n").as_bytes(), DAY_MS);
    }

    fn run_at(objects: &MemoryObjects, now_ms: i64) -> Result<Value, CompactionError> {
        ready(run(objects, &CompactionSettings::default(), now_ms))
    }

    /// The partition's `part-` files.
    fn parts(objects: &MemoryObjects) -> Vec<String> {
        objects
            .keys()
            .into_iter()
            .filter_map(|k| k.strip_prefix(PARTITION).map(str::to_owned))
            .filter(|name| name.starts_with("part-"))
            .collect()
    }

    fn manifest(objects: &MemoryObjects) -> Manifest {
        let key = format!("{PARTITION}_manifest.json");
        serde_json::from_slice(&objects.bytes(&key).unwrap()).unwrap()
    }

    /// A compacted partition, then late data whose run writes the new generation and its
    /// manifest but fails to DELETE the old file, as S3 can: both generations are visible, every
    /// row twice. The old generation's files, and the failed run's error.
    fn two_generations(objects: &MemoryObjects) -> (Vec<String>, CompactionError) {
        land(objects, "1", &["a", "b"]);
        run_at(objects, NOW_MS).unwrap();
        let first = parts(objects);
        assert_eq!(first.len(), 1);
        land(objects, "2", &["c"]);
        objects.fail_once(Call::Delete, &first[0]);
        let err = run_at(objects, NOW_MS + 60_000).unwrap_err();
        (first, err)
    }

    #[test]
    fn a_generation_left_by_a_failed_delete_is_swept_by_the_next_run() {
        let objects = MemoryObjects::default();
        let (first, err) = two_generations(&objects);
        assert!(err.to_string().contains("injected fault: DELETE"), "{err}");
        assert_eq!(parts(&objects).len(), 2);
        assert_eq!(manifest(&objects).rows, 3);
        assert!(
            !objects.keys().iter().any(|k| k.ends_with("_compacting")),
            "the lock is released after a failure"
        );

        // Nothing new arrived, yet the next run removes the generation the manifest does not name.
        let summary = run_at(&objects, NOW_MS + 120_000).unwrap();
        assert_eq!(
            summary["swept"],
            json!([{"partition": PARTITION, "removed": first}]),
            "{summary}"
        );
        assert_eq!(parts(&objects), manifest(&objects).files);
        let again = run_at(&objects, NOW_MS + 180_000).unwrap();
        assert_eq!(
            (again["compacted"].clone(), again["swept"].clone()),
            (json!([]), json!([]))
        );
    }

    #[test]
    fn one_failing_partition_fails_alone_and_the_run_says_which() {
        let objects = MemoryObjects::default();
        land(&objects, "1", &["a"]);
        let other = "raw/bcns/dt=2026-11-22/hour=11/1.json";
        let line = format!(
            "{{\"tx_id\":\"b\",\"type\":\"bid\",\"ts\":{ts},\"received_at\":{ts},\
             \"campaign_item_id\":7,\"app_uid\":\"u\"}}\n",
            ts = DAY_MS + 11 * 3_600_000
        );
        objects.insert_at(other, line.as_bytes(), DAY_MS);
        // Hour 10 is compacted first (partitions run in order); its run fails.
        objects.fail_once(Call::Put, "hour=10/_manifest.json");
        let err = run_at(&objects, NOW_MS).unwrap_err();
        assert!(err.to_string().contains("hour=10/"), "{err}");
        let CompactionError::Partitions { summary, .. } = err else {
            panic!("not a partition failure");
        };
        assert_eq!(summary["failed"][0]["partition"], PARTITION, "{summary}");
        assert_eq!(
            summary["compacted"][0]["partition"], "parquet/bcns/dt=2026-11-22/hour=11/",
            "the next partition was compacted all the same: {summary}"
        );
        let summary = run_at(&objects, NOW_MS + 60_000).unwrap();
        assert_eq!(summary["compacted"][0]["partition"], PARTITION, "{summary}");
    }

    #[test]
    fn a_run_out_of_time_starts_no_more_partitions_and_the_next_run_does_them_oldest_first() {
        let objects = MemoryObjects::default();
        for hour in [9, 10, 11] {
            let key = format!("raw/bcns/dt=2026-11-22/hour={hour:02}/1.json");
            let line = format!(
                "{{\"tx_id\":\"t{hour}\",\"type\":\"bid\",\"ts\":{ts},\"received_at\":{ts},\
                 \"campaign_item_id\":7,\"app_uid\":\"u\"}}\n",
                ts = DAY_MS + hour * 3_600_000
            );
            objects.insert_at(&key, line.as_bytes(), DAY_MS);
        }
        // Time for one partition only.
        let started = std::sync::atomic::AtomicUsize::new(0);
        let out_of_time = || started.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1;
        let summary = ready(run_until(
            &objects,
            &CompactionSettings::default(),
            NOW_MS,
            &out_of_time,
        ))
        .unwrap();
        let partition = |hour: i64| format!("parquet/bcns/dt=2026-11-22/hour={hour:02}/");
        assert_eq!(
            summary["compacted"][0]["partition"],
            partition(9),
            "{summary}"
        );
        assert_eq!(
            summary["deferred"],
            json!([partition(10), partition(11)]),
            "{summary}"
        );

        let summary = run_at(&objects, NOW_MS + 60_000).unwrap();
        let done: Vec<&str> = summary["compacted"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["partition"].as_str())
            .collect();
        assert_eq!(done, [partition(10), partition(11)], "{summary}");
    }

    #[test]
    fn a_run_that_dies_before_its_manifest_leaves_nothing_a_rerun_cannot_finish() {
        let objects = MemoryObjects::default();
        land(&objects, "1", &["a", "b"]);
        objects.fail_once(Call::Put, "_manifest.json");
        assert!(run_at(&objects, NOW_MS).is_err());
        // The file is written but named by no manifest; the rerun finds it in place.
        assert_eq!(parts(&objects).len(), 1);
        let summary = run_at(&objects, NOW_MS + 60_000).unwrap();
        assert_eq!(summary["compacted"][0]["rows"], 2, "{summary}");
        assert_eq!(parts(&objects), manifest(&objects).files);
    }

    #[test]
    fn recovery_after_a_crash_leaves_one_generation_per_partition_and_no_lock() {
        let objects = MemoryObjects::default();
        // A run that died after its manifest, before its delete and its unlock: two generations.
        let (first, _) = two_generations(&objects);
        objects.insert_at(&format!("{PARTITION}{LOCK}"), b"{}", NOW_MS + 60_000);
        // And the first run of another partition, dead between its file and its manifest.
        let other = "parquet/bcns/dt=2026-11-22/hour=11/";
        objects.insert_at(&format!("{other}part-00-00000.parquet"), b"x", NOW_MS);
        assert_eq!(parts(&objects).len(), 2);

        let removed = ready(recover_after_crash(&objects)).unwrap();
        assert_eq!(
            removed,
            [
                format!("{PARTITION}{LOCK}"),
                format!("{PARTITION}{}", first[0]),
                format!("{other}part-00-00000.parquet"),
            ]
        );
        assert_eq!(parts(&objects), manifest(&objects).files);
        assert_eq!(manifest(&objects).rows, 3);
        assert!(ready(recover_after_crash(&objects)).unwrap().is_empty());
    }

    #[test]
    fn a_dead_runs_lock_is_taken_over_by_one_run_and_a_live_one_is_left_alone() {
        let objects = MemoryObjects::default();
        land(&objects, "1", &["a"]);
        let lock = format!("{PARTITION}_compacting");
        objects.insert_at(&lock, b"{}", NOW_MS - 60_000);
        let summary = run_at(&objects, NOW_MS).unwrap();
        assert_eq!(
            summary["busy"],
            json!([PARTITION]),
            "a live run's lock: {summary}"
        );
        assert!(parts(&objects).is_empty());

        // Dead: two runs find the same lock; only the one whose conditional write lands takes it.
        let later = NOW_MS + STALE_LOCK_MS;
        let stale = ready(objects.list(&lock)).unwrap().remove(0);
        assert!(ready(take_lock(&objects, &lock, later)).unwrap());
        let theirs = ready(objects.list(&lock)).unwrap().remove(0);
        assert_ne!(theirs.etag, stale.etag);
        let late = ready(objects.put(
            &lock,
            b"{}".to_vec(),
            "",
            Precondition::Matches(&stale.etag),
        ));
        assert_eq!(
            late.unwrap(),
            Written::Conflict,
            "the loser's takeover writes nothing"
        );
        assert!(
            !ready(take_lock(&objects, &lock, later)).unwrap(),
            "a lock just taken over is live"
        );
        ready(objects.delete(&lock)).unwrap();

        let summary = run_at(&objects, later).unwrap();
        assert_eq!(summary["compacted"][0]["rows"], 1, "{summary}");
    }

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
