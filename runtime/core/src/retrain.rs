//! One retraining round, the same wherever it runs (the trainer Lambda, `sdp local`): the bids
//! are labelled by whether their impression joined, a candidate is trained on four fifths of
//! them, and it is promoted only if it is not worse than the serving model on the other fifth.

use std::collections::HashSet;

use crate::model::{stable_hash, BidFeatures, Metrics, Model};
use crate::train::{metrics, should_promote, train, Example, TrainConfig};

/// Fewer bids than this say nothing a model could learn.
pub const MIN_BIDS: usize = 100;

/// The transactions a round learns from at most. A round over a million peaks at about 690 MB and
/// takes seconds (`model-bench round`), well inside the trainer's 2048 MB and 15 minutes.
pub const DEFAULT_MAX_BIDS: usize = 1_000_000;

/// What training learns from: each transaction's bid once, and the transactions that won.
///
/// At most `max_bids` transactions are kept: those whose id hashes below a bound, which halves
/// each time the sample outgrows `max_bids`. The sample is therefore the same set of
/// transactions whatever order the files are read in (the largest halving of the hash space
/// that fits), a transaction's bid and its win are kept or dropped together, and memory stays
/// bounded however much the lake holds.
#[derive(Debug)]
pub struct LabelledBids {
    /// (tx_id, features), each transaction once, in the order added.
    bids: Vec<(String, BidFeatures)>,
    in_sample: HashSet<String>,
    /// The tx_ids whose impression joined.
    won: HashSet<String>,
    max_bids: usize,
    /// Transactions whose sample hash is at or above this are not in the sample.
    bound: u64,
    /// How many times the bound was halved.
    halvings: u32,
}

impl Default for LabelledBids {
    fn default() -> Self {
        LabelledBids::with_max_bids(DEFAULT_MAX_BIDS)
    }
}

/// Where a transaction falls in the hash space the sample is cut from: its id's stable hash,
/// mixed (splitmix64's finaliser) so that ids differing only in their last characters spread
/// over the high bits the bound compares.
fn sample_hash(tx_id: &str) -> u64 {
    let mut x = stable_hash(tx_id.as_bytes());
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl LabelledBids {
    pub fn with_max_bids(max_bids: usize) -> Self {
        LabelledBids {
            bids: Vec::new(),
            in_sample: HashSet::new(),
            won: HashSet::new(),
            max_bids: max_bids.max(1),
            bound: u64::MAX,
            halvings: 0,
        }
    }

    /// Adds a bid unless its transaction is already in (redeliveries, retries) or outside the
    /// sample.
    pub fn add_bid(&mut self, tx_id: String, features: BidFeatures) {
        if sample_hash(&tx_id) >= self.bound || self.in_sample.contains(&tx_id) {
            return;
        }
        self.in_sample.insert(tx_id.clone());
        self.bids.push((tx_id, features));
        while self.bids.len() > self.max_bids {
            self.bound /= 2;
            self.halvings += 1;
            let bound = self.bound;
            let inside = |tx_id: &String| sample_hash(tx_id) < bound;
            self.bids.retain(|(tx_id, _)| inside(tx_id));
            self.in_sample.retain(inside);
            self.won.retain(inside);
        }
    }

    /// Marks a transaction as won (its impression joined), if it is in the sample's hash range.
    pub fn add_win(&mut self, tx_id: &str) {
        if sample_hash(tx_id) < self.bound {
            self.won.insert(tx_id.to_owned());
        }
    }

    pub fn bids(&self) -> &[(String, BidFeatures)] {
        &self.bids
    }

    pub fn won(&self, tx_id: &str) -> bool {
        self.won.contains(tx_id)
    }

    /// Wins recorded within the sample's hash range (some may belong to bids outside the window).
    pub fn wins(&self) -> usize {
        self.won.len()
    }

    /// The share of the lake's transactions the sample keeps: 1, 1/2, 1/4, ...
    pub fn sample_rate(&self) -> f64 {
        0.5_f64.powi(i32::try_from(self.halvings).unwrap_or(i32::MAX))
    }
}

/// How a round ended.
#[derive(Debug)]
pub enum Round {
    /// Too few bids, or the held-out fifth has one class only: nothing to rank yet.
    NotEnoughData { bids: usize },
    /// The candidate was worse than the serving model on the same held-out bids.
    Kept {
        candidate: Metrics,
        current: Metrics,
    },
    /// The candidate, with its held-out metrics recorded in it.
    Promoted { model: Model, current: Metrics },
}

/// Whether a transaction is held out: a fixed split by its id, so a bid is always on the same side
/// whatever else the data holds, and a candidate and the serving model are judged on the same bids.
pub fn held_out(tx_id: &str) -> bool {
    tx_id
        .bytes()
        .fold(0_u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 5
        == 0
}

/// Trains a candidate named `version` on `data` and judges it against `current`.
pub fn round(data: &LabelledBids, current: &Model, config: &TrainConfig, version: &str) -> Round {
    let not_enough = Round::NotEnoughData {
        bids: data.bids.len(),
    };
    if data.bids.len() < MIN_BIDS {
        return not_enough;
    }
    let mut fit: Vec<Example> = Vec::new();
    let mut evaluation: Vec<(&BidFeatures, bool)> = Vec::new();
    for (tx_id, features) in &data.bids {
        let label = data.won(tx_id);
        if held_out(tx_id) {
            evaluation.push((features, label));
        } else {
            fit.push((features.vector(config.hash_bits), label));
        }
    }
    let labels: Vec<bool> = evaluation.iter().map(|(_, y)| *y).collect();
    if labels.iter().all(|y| *y) || !labels.iter().any(|y| *y) {
        return not_enough;
    }
    let evaluate = |model: &Model| {
        let scores: Vec<f64> = evaluation.iter().map(|(b, _)| model.score(b)).collect();
        metrics(&scores, &labels)
    };
    let mut model = train(&fit, config, version);
    let (candidate, current) = (evaluate(&model), evaluate(current));
    if !should_promote(&candidate, &current) {
        return Round::Kept { candidate, current };
    }
    model.metrics = Some(candidate);
    Round::Promoted { model, current }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Rng, World};

    fn world_bids(seed: u64, n: usize) -> LabelledBids {
        let mut rng = Rng(seed);
        let world = World::new(&mut Rng(1));
        let mut data = LabelledBids::default();
        for i in 0..n {
            let (features, won, _) = world.sample(&mut rng);
            let tx_id = format!("{seed}-{i}");
            if won {
                data.add_win(&tx_id);
            }
            data.add_bid(tx_id, features);
        }
        data
    }

    fn small() -> TrainConfig {
        TrainConfig {
            hash_bits: 12,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn a_model_learned_from_the_data_replaces_the_bootstrap() {
        let data = world_bids(11, 5_000);
        let Round::Promoted { model, current } =
            round(&data, &Model::constant(0.5), &small(), "v1")
        else {
            panic!("not promoted");
        };
        let metrics = model.metrics.unwrap_or_else(|| panic!("no metrics"));
        assert!(
            metrics.auc > current.auc + 0.1,
            "{metrics:?} vs {current:?}"
        );
        assert_eq!(
            metrics.rows,
            data.bids().iter().filter(|(t, _)| held_out(t)).count()
        );
    }

    #[test]
    fn a_worse_candidate_is_not_promoted() {
        let good = match round(
            &world_bids(11, 5_000),
            &Model::constant(0.5),
            &small(),
            "v1",
        ) {
            Round::Promoted { model, .. } => model,
            other => panic!("{other:?}"),
        };
        // The same world, but only 300 bids: the candidate overfits its 240 and is worse on the
        // held-out 60 than the model that learned from 4,000.
        match round(&world_bids(12, 300), &good, &small(), "v2") {
            Round::Kept { candidate, current } => {
                assert!(candidate.log_loss > current.log_loss || candidate.auc < current.auc);
            }
            other => panic!("a worse candidate replaced the serving model: {other:?}"),
        }
    }

    #[test]
    fn too_few_bids_or_one_class_trains_nothing() {
        let few = world_bids(3, MIN_BIDS - 1);
        assert!(matches!(
            round(&few, &Model::constant(0.5), &small(), "v"),
            Round::NotEnoughData { bids } if bids == MIN_BIDS - 1
        ));
        let mut none_won = world_bids(3, 1_000);
        none_won.won.clear();
        assert!(matches!(
            round(&none_won, &Model::constant(0.5), &small(), "v"),
            Round::NotEnoughData { .. }
        ));
    }

    #[test]
    fn a_transaction_seen_twice_is_one_bid() {
        let mut data = LabelledBids::default();
        let bid = World::new(&mut Rng(1)).sample(&mut Rng(2)).0;
        data.add_bid("t".into(), bid.clone());
        data.add_bid("t".into(), bid);
        assert_eq!(data.bids.len(), 1);
    }

    #[test]
    fn a_lake_larger_than_the_limit_is_sampled_by_transaction_the_same_in_any_order() {
        let world = World::new(&mut Rng(1));
        let mut rng = Rng(5);
        let all: Vec<(String, BidFeatures, bool)> = (0..10_000)
            .map(|i| {
                let (features, won, _) = world.sample(&mut rng);
                (format!("tx-{i}"), features, won)
            })
            .collect();
        let sample = |order: &mut dyn Iterator<Item = &(String, BidFeatures, bool)>| {
            let mut data = LabelledBids::with_max_bids(3_000);
            for (tx_id, features, won) in order {
                data.add_bid(tx_id.clone(), features.clone());
                data.add_bid(tx_id.clone(), features.clone()); // redelivered
                if *won {
                    data.add_win(tx_id);
                }
            }
            data
        };
        let forward = sample(&mut all.iter());
        let backward = sample(&mut all.iter().rev());
        // 10,000 halved twice: about 2,500 kept, a quarter.
        assert_eq!(forward.sample_rate(), 0.25);
        assert!(
            (2_200..=3_000).contains(&forward.bids.len()),
            "{}",
            forward.bids.len()
        );
        let ids = |d: &LabelledBids| {
            let mut ids: Vec<String> = d.bids.iter().map(|(t, _)| t.clone()).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&forward), ids(&backward));
        // Every kept bid keeps its label, and no win is kept without its bid.
        for (tx_id, _, won) in &all {
            let kept = forward.in_sample.contains(tx_id);
            assert_eq!(forward.won(tx_id), kept && *won, "{tx_id}");
        }
        // Within the limit, nothing is dropped.
        let mut whole = LabelledBids::with_max_bids(10_000);
        for (tx_id, features, _) in &all {
            whole.add_bid(tx_id.clone(), features.clone());
        }
        assert_eq!((whole.bids.len(), whole.sample_rate()), (10_000, 1.0));
    }
}
