//! Local training: every so often, if bids arrived since the last run, the bids of the raw lake
//! are labelled by whether their impression joined, a model is trained on four fifths of them, and
//! it replaces the serving model only if it is not worse on the other fifth (the same gate as the
//! trainer Lambda). Promoted models are kept under `<data-dir>/models/` (the newest few).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use sdp_core::events::Event;
use sdp_core::model::{BidFeatures, Model};
use sdp_core::train::{metrics, should_promote, train, Example, TrainConfig};

/// Fewer bids than this say nothing a model could learn.
const MIN_BIDS: usize = 100;
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
    let LakeBids { bids, won } =
        read_lake(data_dir).map_err(|e| format!("reading the raw lake failed: {e}"))?;
    if bids.len() < MIN_BIDS || bids.len() == trained_on {
        return Ok(None);
    }
    let config = TrainConfig::default();
    let (mut fit, mut held_out): (Vec<Example>, Vec<(BidFeatures, bool)>) =
        (Vec::new(), Vec::new());
    for (tx_id, features) in &bids {
        let label = won.contains(tx_id);
        // A fixed split by transaction: the same bid is always on the same side.
        if tx_id
            .bytes()
            .fold(0_u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % 5
            == 0
        {
            held_out.push((features.clone(), label));
        } else {
            fit.push((features.vector(config.hash_bits), label));
        }
    }
    let labels: Vec<bool> = held_out.iter().map(|(_, y)| *y).collect();
    if labels.iter().all(|y| *y) || !labels.iter().any(|y| *y) {
        return Ok(None); // one class only: nothing to rank yet
    }
    let version = format!("{:020}", crate::now_ms());
    let mut candidate = train(&fit, &config, &version);
    let evaluate = |model: &Model| {
        let scores: Vec<f64> = held_out.iter().map(|(b, _)| model.score(b)).collect();
        metrics(&scores, &labels)
    };
    let (new, old) = (evaluate(&candidate), evaluate(current));
    if !should_promote(&new, &old) {
        eprintln!("trainer: kept the current model (candidate {new:?}, current {old:?})");
        return Ok(None);
    }
    candidate.metrics = Some(new);
    save(data_dir, &candidate).map_err(|e| format!("saving the model failed: {e}"))?;
    eprintln!(
        "trainer: promoted model {} (AUC {:.3}, log loss {:.3}, {} bids)",
        candidate.version,
        new.auc,
        new.log_loss,
        bids.len()
    );
    Ok(Some((candidate, bids.len())))
}

/// What training learns from: the bids of the raw lake and which of them won.
struct LakeBids {
    /// (tx_id, features), each transaction once.
    bids: Vec<(String, BidFeatures)>,
    /// The tx_ids whose impression joined.
    won: HashSet<String>,
}

fn read_lake(data_dir: &Path) -> std::io::Result<LakeBids> {
    let mut bids = Vec::new();
    let mut seen = HashSet::new();
    for line in lines(&data_dir.join("lake/raw/bcns"))? {
        let Ok(event) = serde_json::from_str::<Event>(&line) else {
            continue;
        };
        if let Some(features) = BidFeatures::of_bid(&event) {
            if seen.insert(event.tx_id.clone()) {
                bids.push((event.tx_id, features));
            }
        }
    }
    let won = lines(&data_dir.join("lake/raw/impressions"))?
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|row| row["tx_id"].as_str().map(str::to_owned))
        .collect();
    Ok(LakeBids { bids, won })
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
