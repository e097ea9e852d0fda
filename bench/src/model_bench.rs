//! The win-probability model: training rows/s, scoring predictions/s on one core and the p99 of
//! one score, and held-out AUC, on bids drawn from a known logistic world (sdp_core::synthetic).
//! `model-bench generate DIR TRAIN TEST` writes DIR/train.csv and DIR/test.csv (the same rows
//! scikit-learn reads); `model-bench run DIR` trains and scores with sdp-core and prints one line
//! of results. `model-bench round LAKE MAX` runs one trainer round (`sdp_core::retrain`) over LAKE
//! transactions held at most MAX at a time, as the trainer Lambda does: run it under
//! `/usr/bin/time` for the round's peak memory. `model-bench lake DIR N` writes a compacted lake of
//! N synthetic transactions under DIR/lake (as `sdp local` keeps one); `model-bench retraining DIR`
//! runs `sdp local`'s retraining over it (`sdp_app::retraining`, reading the Parquet as the trainer
//! Lambda does): run it under `/usr/bin/time` for the run's peak memory.

use std::io::{BufRead, BufWriter, Write};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sdp_core::model::{BidFeatures, Model};
use sdp_core::retrain::{round, LabelledBids, Round};
use sdp_core::synthetic::{Rng, World};
use sdp_core::train::{metrics, train, TrainConfig};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [_, "generate", dir, n_train, n_test] => generate(dir, n_train.parse()?, n_test.parse()?),
        [_, "run", dir] => run(dir),
        [_, "round", lake, max] => trainer_round(lake.parse()?, max.parse()?),
        [_, "lake", dir, n] => lake(dir, n.parse()?),
        [_, "retraining", dir] => retraining(dir),
        _ => bail!(
            "usage: model-bench generate DIR TRAIN TEST | run DIR | round LAKE MAX | lake DIR N | retraining DIR"
        ),
    }
}

const HEADER: &str =
    "campaign_item_id,domain,creative_id,creative_category,win_price,hour,label,truth";

fn generate(dir: &str, n_train: usize, n_test: usize) -> Result<()> {
    let mut rng = Rng(0x5eed_0000_1111_2222);
    let world = World::new(&mut rng);
    for (name, n) in [("train", n_train), ("test", n_test)] {
        let mut out = BufWriter::new(std::fs::File::create(format!("{dir}/{name}.csv"))?);
        writeln!(out, "{HEADER}")?;
        for _ in 0..n {
            let (b, label, truth) = world.sample(&mut rng);
            writeln!(
                out,
                "{},{},{},{},{},{},{},{truth}",
                b.campaign_item_id,
                b.domain,
                b.creative_id,
                b.creative_category,
                b.win_price,
                b.hour,
                u8::from(label)
            )?;
        }
        out.flush()?;
    }
    Ok(())
}

fn read(path: &str) -> Result<Vec<(BidFeatures, bool, f64)>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    file.lines()
        .skip(1)
        .map(|line| {
            let line = line?;
            let f: Vec<&str> = line.split(',').collect();
            let [campaign, domain, creative, category, price, hour, label, truth] = f[..] else {
                bail!("bad row: {line}");
            };
            Ok((
                BidFeatures {
                    campaign_item_id: campaign.into(),
                    domain: domain.into(),
                    creative_id: creative.into(),
                    creative_category: category.into(),
                    win_price: price.parse()?,
                    hour: hour.parse()?,
                },
                label == "1",
                truth.parse()?,
            ))
        })
        .collect()
}

fn run(dir: &str) -> Result<()> {
    let train_rows = read(&format!("{dir}/train.csv")).context("train.csv")?;
    let test_rows = read(&format!("{dir}/test.csv")).context("test.csv")?;
    let config = TrainConfig::default();
    let started = Instant::now();
    let examples: Vec<_> = train_rows
        .iter()
        .map(|(b, y, _)| (b.vector(config.hash_bits), *y))
        .collect();
    let model = train(&examples, &config, "bench");
    let train_seconds = started.elapsed().as_secs_f64();

    let labels: Vec<bool> = test_rows.iter().map(|(_, y, _)| *y).collect();
    let started = Instant::now();
    let scores: Vec<f64> = test_rows.iter().map(|(b, _, _)| model.score(b)).collect();
    let score_seconds = started.elapsed().as_secs_f64();
    // One score at a time, as the predict function answers a request.
    let mut latencies: Vec<f64> = test_rows
        .iter()
        .take(100_000)
        .map(|(b, _, _)| {
            let t = Instant::now();
            std::hint::black_box(model.score(std::hint::black_box(b)));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies[(latencies.len() - 1) * 99 / 100];
    let ours = metrics(&scores, &labels);
    let truth = metrics(
        &test_rows.iter().map(|(_, _, p)| *p).collect::<Vec<_>>(),
        &labels,
    );
    println!(
        "sdp-core train_s={train_seconds:.3} train_rows_per_s={:.0} predict_per_s={:.0} p99_us={p99:.2} auc={:.4} log_loss={:.4} truth_auc={:.4}",
        train_rows.len() as f64 / train_seconds,
        test_rows.len() as f64 / score_seconds,
        ours.auc,
        ours.log_loss,
        truth.auc
    );
    Ok(())
}

/// One retraining round over `lake` bids of the synthetic world, of which at most `max` are held.
fn trainer_round(lake: usize, max: usize) -> Result<()> {
    let mut rng = Rng(0x5eed_0000_3333_4444);
    let world = World::new(&mut rng);
    let started = Instant::now();
    let mut data = LabelledBids::with_max_bids(max);
    for i in 0..lake {
        let (bid, won, _) = world.sample(&mut rng);
        let tx_id = format!("{i:08x}-5c1e-4a7b-9d2f-{i:012x}");
        if won {
            data.add_win(&tx_id);
        }
        data.add_bid(tx_id, bid);
    }
    let gathered = started.elapsed().as_secs_f64();
    let outcome = round(
        &data,
        &Model::constant(0.5),
        &TrainConfig::default(),
        "bench",
    );
    let Round::Promoted { model, .. } = outcome else {
        bail!("the round did not promote: {outcome:?}");
    };
    let auc = model.metrics.map_or(f64::NAN, |m| m.auc);
    println!(
        "lake {lake} bids, held {} (sample rate {}), gathered in {gathered:.2} s, trained and judged in {:.2} s, held-out AUC {auc:.4}",
        data.bids().len(),
        data.sample_rate(),
        started.elapsed().as_secs_f64() - gathered
    );
    Ok(())
}

/// Transactions drawn and compacted at a time while writing a lake: files of a partition are
/// this many transactions' rows (a day spread over 24 hours), and the writer's memory stays small.
const LAKE_CHUNK: usize = 250_000;

fn lake(dir: &str, n: usize) -> Result<()> {
    let world = World::new(&mut Rng(0x5eed_0000_5555_6666));
    let root = std::path::Path::new(dir).join("lake");
    let (mut files, mut bytes) = (0, 0);
    for (chunk, start) in (0..n).step_by(LAKE_CHUNK).enumerate() {
        let size = LAKE_CHUNK.min(n - start);
        let tag = format!("chunk{chunk:03}");
        let drawn = sdp_lake::synthetic::draw(&world, 7 + chunk as u64, size, &tag);
        for (key, file) in sdp_lake::synthetic::parquet_objects(&drawn, &tag)? {
            let path = root.join(&key);
            std::fs::create_dir_all(path.parent().context("a key without a folder")?)?;
            bytes += file.len();
            files += 1;
            std::fs::write(path, file)?;
        }
    }
    println!(
        "lake {n} transactions: {files} Parquet files, {:.1} MB",
        bytes as f64 / 1e6
    );
    Ok(())
}

fn retraining(dir: &str) -> Result<()> {
    use sdp_app::models::ModelStore;
    use sdp_app::retraining::{run, RetrainingSettings};
    let lake = std::sync::Arc::new(sdp_fs::FsObjects::new(
        std::path::Path::new(dir).join("lake"),
    ));
    let models = ModelStore::new(std::sync::Arc::clone(&lake), "models/");
    // The lake's day at 20:00: every partition is within the training window.
    let now_ms = sdp_lake::synthetic::DAY_MS + 20 * 3_600_000;
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let record = runtime.block_on(run(
        lake.as_ref(),
        &models,
        &RetrainingSettings::default(),
        now_ms,
    ))?;
    println!(
        "retraining: {} bids held (sample rate {}), outcome {}, {:.1} s",
        record["bids"],
        record["sample_rate"],
        record["outcome"],
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
