//! Local training: every so often, if bids arrived since the last run, one round of
//! `sdp_core::retrain` (the trainer Lambda's) over the bids of the raw lake.
//! Promoted models are kept under `<data-dir>/models/` (the newest few).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use sdp_core::events::Event;
use sdp_core::model::{BidFeatures, Model};
use sdp_core::retrain::{round, LabelledBids, Round};
use sdp_core::train::TrainConfig;

/// Promoted model files kept.
const KEEP: usize = 3;

/// The model the predictions API serves, shared with the trainer.
pub type Serving = Arc<RwLock<Arc<Model>>>;

/// The newest promoted model under `data_dir`, else the bootstrap (every bid scores 0.5: no
/// information yet).
pub fn load_serving(data_dir: &Path) -> Serving {
    let newest = model_files(data_dir).pop().and_then(|path| {
        let model: Model = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        model.check().ok().map(|()| model)
    });
    Arc::new(RwLock::new(Arc::new(
        newest.unwrap_or_else(|| Model::constant(0.5)),
    )))
}

fn models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

/// Model files, oldest first (their names start with the promotion time).
fn model_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(models_dir(data_dir))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

pub async fn run(
    data_dir: PathBuf,
    serving: Serving,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut trained_on = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let dir = data_dir.clone();
        let current = serving.read().map(|m| Arc::clone(&m)).ok();
        let Some(current) = current else { return };
        let outcome =
            tokio::task::spawn_blocking(move || train_once(&dir, &current, trained_on)).await;
        match outcome {
            Ok(Ok(Some((model, bids)))) => {
                trained_on = bids;
                if let Ok(mut slot) = serving.write() {
                    *slot = Arc::new(model);
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(err)) => eprintln!("trainer: {err}"),
            Err(err) => eprintln!("trainer: {err}"),
        }
    }
}

/// One round; the promoted model and the number of bids it saw, or None.
fn train_once(
    data_dir: &Path,
    current: &Model,
    trained_on: usize,
) -> Result<Option<(Model, usize)>, String> {
    let data = read_lake(data_dir).map_err(|e| format!("reading the raw lake failed: {e}"))?;
    let bids = data.bids().len();
    if bids == trained_on {
        return Ok(None);
    }
    let version = format!("{:020}", crate::now_ms());
    match round(&data, current, &TrainConfig::default(), &version) {
        Round::NotEnoughData { .. } => Ok(None),
        Round::Kept { candidate, current } => {
            eprintln!(
                "trainer: kept the current model (candidate {candidate:?}, current {current:?})"
            );
            Ok(None)
        }
        Round::Promoted { model, .. } => {
            save(data_dir, &model).map_err(|e| format!("saving the model failed: {e}"))?;
            if let Some(metrics) = model.metrics {
                eprintln!(
                    "trainer: promoted model {} (AUC {:.3}, log loss {:.3}, {bids} bids)",
                    model.version, metrics.auc, metrics.log_loss
                );
            }
            Ok(Some((model, bids)))
        }
    }
}

/// The bids of the raw lake, labelled by whether their impression joined.
fn read_lake(data_dir: &Path) -> std::io::Result<LabelledBids> {
    let mut data = LabelledBids::default();
    for line in lines(&data_dir.join("lake/raw/bcns"))? {
        let Ok(event) = serde_json::from_str::<Event>(&line) else {
            continue;
        };
        if let Some(features) = BidFeatures::of_bid(&event) {
            data.add_bid(event.tx_id, features);
        }
    }
    for line in lines(&data_dir.join("lake/raw/impressions"))? {
        if let Ok(row) = serde_json::from_str::<serde_json::Value>(&line) {
            if let Some(tx_id) = row["tx_id"].as_str() {
                data.add_win(tx_id);
            }
        }
    }
    Ok(data)
}

/// Every line of every `.json` file under `root`, in file-name order.
fn lines(root: &Path) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for file in files {
        out.extend(std::fs::read_to_string(file)?.lines().map(str::to_owned));
    }
    Ok(out)
}

fn save(data_dir: &Path, model: &Model) -> std::io::Result<()> {
    let dir = models_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.json", model.version));
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, serde_json::to_vec(model)?)?;
    std::fs::rename(&temporary, &path)?;
    let files = model_files(data_dir);
    for old in files.iter().take(files.len().saturating_sub(KEEP)) {
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}
