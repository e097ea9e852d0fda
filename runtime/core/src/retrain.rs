//! One retraining round, the same wherever it runs (the trainer Lambda, `sdp local`): the bids
//! are labelled by whether their impression joined, a candidate is trained on four fifths of
//! them, and it is promoted only if it is not worse than the serving model on the other fifth.

use std::collections::HashSet;

use crate::model::{BidFeatures, Metrics, Model};
use crate::train::{metrics, should_promote, train, Example, TrainConfig};

/// Fewer bids than this say nothing a model could learn.
pub const MIN_BIDS: usize = 100;

/// What training learns from: each transaction's bid once, and the transactions that won.
#[derive(Debug, Default)]
pub struct LabelledBids {
    /// (tx_id, features), each transaction once.
    pub bids: Vec<(String, BidFeatures)>,
    /// The tx_ids whose impression joined.
    pub won: HashSet<String>,
}

impl LabelledBids {
    /// Adds a bid unless its transaction is already in (redeliveries, retries).
    pub fn add_bid(&mut self, seen: &mut HashSet<String>, tx_id: String, features: BidFeatures) {
        if seen.insert(tx_id.clone()) {
            self.bids.push((tx_id, features));
        }
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
        let label = data.won.contains(tx_id);
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
        let mut seen = HashSet::new();
        for i in 0..n {
            let (features, won, _) = world.sample(&mut rng);
            let tx_id = format!("{seed}-{i}");
            if won {
                data.won.insert(tx_id.clone());
            }
            data.add_bid(&mut seen, tx_id, features);
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
            data.bids.iter().filter(|(t, _)| held_out(t)).count()
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
        let mut seen = HashSet::new();
        let bid = World::new(&mut Rng(1)).sample(&mut Rng(2)).0;
        data.add_bid(&mut seen, "t".into(), bid.clone());
        data.add_bid(&mut seen, "t".into(), bid);
        assert_eq!(data.bids.len(), 1);
    }
}
