//! Training and evaluating the win-probability model: L2-regularised logistic regression fitted by
//! L-BFGS (full batch, deterministic: the same rows give the same model), with held-out log loss,
//! AUC and calibration error.

use crate::model::{sigmoid, Metrics, Model, Vector, BID_TIME_FEATURES, FORMAT, FORMAT_VERSION};

/// A labelled example: a bid's feature vector and whether it won (an impression followed).
pub type Example = (Vector, bool);

#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    pub hash_bits: u32,
    /// L2 penalty on the weights (not the bias), per example.
    pub l2: f64,
    pub max_iterations: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            hash_bits: crate::model::DEFAULT_HASH_BITS,
            l2: 1e-4,
            max_iterations: 200,
        }
    }
}

/// Pairs of (step, gradient change) L-BFGS keeps.
const HISTORY: usize = 10;

/// Fits a model to `examples`; `version` names it.
pub fn train(examples: &[Example], config: &TrainConfig, version: &str) -> Model {
    let dimension = 1_usize << config.hash_bits;
    // Parameters: the weights, then the bias.
    let mut x = vec![0.0; dimension + 1];
    let positives = examples.iter().filter(|(_, y)| *y).count() as f64;
    let n = examples.len().max(1) as f64;
    let rate = ((positives + 0.5) / (n + 1.0)).clamp(1e-6, 1.0 - 1e-6);
    x[dimension] = (rate / (1.0 - rate)).ln(); // start from the base rate
    let (mut loss, mut gradient) = loss_and_gradient(examples, &x, config.l2);
    let mut history: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    for _ in 0..config.max_iterations {
        if gradient.iter().fold(0.0_f64, |m, g| m.max(g.abs())) < 1e-7 {
            break;
        }
        let direction = two_loop(&gradient, &history);
        let slope = dot(&direction, &gradient);
        // Backtracking (Armijo): the full step first, halved until the loss drops enough.
        let mut step = if history.is_empty() {
            1.0 / norm(&gradient).max(1e-12)
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..40 {
            let candidate: Vec<f64> = x
                .iter()
                .zip(&direction)
                .map(|(xi, di)| xi + step * di)
                .collect();
            let (new_loss, new_gradient) = loss_and_gradient(examples, &candidate, config.l2);
            if new_loss <= loss + 1e-4 * step * slope {
                accepted = Some((candidate, new_loss, new_gradient));
                break;
            }
            step *= 0.5;
        }
        let Some((candidate, new_loss, new_gradient)) = accepted else {
            break; // no descent possible: at the optimum to machine precision
        };
        let s: Vec<f64> = candidate.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = new_gradient
            .iter()
            .zip(&gradient)
            .map(|(a, b)| a - b)
            .collect();
        if dot(&s, &y) > 1e-12 {
            if history.len() == HISTORY {
                history.remove(0);
            }
            history.push((s, y));
        }
        let improvement = loss - new_loss;
        (x, loss, gradient) = (candidate, new_loss, new_gradient);
        if improvement.abs() <= 1e-10 * loss.abs().max(1.0) {
            break;
        }
    }
    let bias = x[dimension];
    let weights = x[..dimension]
        .iter()
        .enumerate()
        .filter(|(_, w)| **w != 0.0)
        .filter_map(|(i, w)| Some((u32::try_from(i).ok()?, *w)))
        .collect();
    Model {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        version: version.into(),
        features: BID_TIME_FEATURES.iter().map(|f| (*f).to_owned()).collect(),
        hash_bits: config.hash_bits,
        bias,
        weights,
        metrics: None,
    }
}

/// Mean log loss plus the L2 penalty, and its gradient.
fn loss_and_gradient(examples: &[Example], x: &[f64], l2: f64) -> (f64, Vec<f64>) {
    let dimension = x.len() - 1;
    let n = examples.len().max(1) as f64;
    let mut gradient = vec![0.0; x.len()];
    let mut loss = 0.0;
    for (vector, label) in examples {
        let z = x[dimension] + vector.iter().map(|(i, v)| x[*i as usize] * v).sum::<f64>();
        let y = if *label { 1.0 } else { 0.0 };
        // log(1 + e^z) - y z, computed without overflow.
        loss += z.max(0.0) + (-z.abs()).exp().ln_1p() - y * z;
        let residual = (sigmoid(z) - y) / n;
        for (i, v) in vector {
            gradient[*i as usize] += residual * v;
        }
        gradient[dimension] += residual;
    }
    loss /= n;
    for i in 0..dimension {
        loss += 0.5 * l2 * x[i] * x[i];
        gradient[i] += l2 * x[i];
    }
    (loss, gradient)
}

/// The L-BFGS search direction: minus the inverse-Hessian estimate times the gradient.
fn two_loop(gradient: &[f64], history: &[(Vec<f64>, Vec<f64>)]) -> Vec<f64> {
    let mut q = gradient.to_vec();
    let mut alphas = Vec::with_capacity(history.len());
    for (s, y) in history.iter().rev() {
        let rho = 1.0 / dot(y, s);
        let alpha = rho * dot(s, &q);
        q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= alpha * yi);
        alphas.push((rho, alpha));
    }
    if let Some((s, y)) = history.last() {
        let gamma = dot(s, y) / dot(y, y);
        q.iter_mut().for_each(|qi| *qi *= gamma);
    }
    for ((s, y), (rho, alpha)) in history.iter().zip(alphas.into_iter().rev()) {
        let beta = rho * dot(y, &q);
        q.iter_mut()
            .zip(s)
            .for_each(|(qi, si)| *qi += (alpha - beta) * si);
    }
    q.iter_mut().for_each(|qi| *qi = -*qi);
    q
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// The promotion gate: a candidate replaces the current model only if it is not worse on the same
/// held-out rows, by log loss (the proper scoring rule the model is trained on) and by AUC.
pub fn should_promote(candidate: &Metrics, current: &Metrics) -> bool {
    candidate.log_loss <= current.log_loss && candidate.auc >= current.auc - 1e-9
}

/// Log loss, AUC and calibration error of `scores` (probabilities) against `labels`.
pub fn metrics(scores: &[f64], labels: &[bool]) -> Metrics {
    let n = scores.len().max(1) as f64;
    let log_loss = scores
        .iter()
        .zip(labels)
        .map(|(p, y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if *y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum::<f64>()
        / n;
    Metrics {
        log_loss,
        auc: auc(scores, labels),
        calibration_error: calibration_error(scores, labels),
        rows: scores.len(),
    }
}

/// The probability that a random positive scores above a random negative (ties count half):
/// the Mann–Whitney statistic over average ranks.
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|k| labels[**k]).count() as f64 * average_rank;
        i = j + 1;
    }
    let positives = labels.iter().filter(|y| **y).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Expected calibration error: over ten equal-width score bins, the row-weighted gap between the
/// mean score and the observed rate.
pub fn calibration_error(scores: &[f64], labels: &[bool]) -> f64 {
    let mut bins = [(0.0, 0.0, 0.0); 10]; // (rows, score sum, positives)
    for (p, y) in scores.iter().zip(labels) {
        let bin = ((p * 10.0) as usize).min(9);
        bins[bin].0 += 1.0;
        bins[bin].1 += p;
        bins[bin].2 += if *y { 1.0 } else { 0.0 };
    }
    let n = scores.len().max(1) as f64;
    bins.iter()
        .filter(|(rows, _, _)| *rows > 0.0)
        .map(|(rows, sum, positives)| rows / n * (sum / rows - positives / rows).abs())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BidFeatures;
    use crate::synthetic::{Rng, World};

    #[test]
    fn a_model_trained_on_a_known_logistic_world_recovers_its_ranking_and_is_calibrated() {
        let mut rng = Rng(0x5eed_1234_abcd_9876);
        let world = World::new(&mut rng);
        let config = TrainConfig {
            hash_bits: 16,
            ..TrainConfig::default()
        };
        let train_set: Vec<Example> = (0..30_000)
            .map(|_| {
                let (bid, label, _) = world.sample(&mut rng);
                (bid.vector(config.hash_bits), label)
            })
            .collect();
        let held_out: Vec<(BidFeatures, bool, f64)> =
            (0..10_000).map(|_| world.sample(&mut rng)).collect();
        let model = train(&train_set, &config, "test");
        assert_eq!(model.check(), Ok(()));
        let labels: Vec<bool> = held_out.iter().map(|(_, y, _)| *y).collect();
        let truth: Vec<f64> = held_out.iter().map(|(_, _, p)| *p).collect();
        let scores: Vec<f64> = held_out.iter().map(|(b, _, _)| model.score(b)).collect();
        let (ours, best) = (metrics(&scores, &labels), metrics(&truth, &labels));
        eprintln!("trained: {ours:?}\ngenerating model: {best:?}");
        assert!(
            ours.auc >= best.auc - 0.02,
            "AUC {:.4}, the generating model's {:.4}",
            ours.auc,
            best.auc
        );
        assert!(ours.calibration_error < 0.03, "{ours:?}");
        assert!(ours.log_loss < best.log_loss + 0.02, "{ours:?} vs {best:?}");

        // The gate, on the same held-out rows: the trained model replaces the bootstrap; the
        // bootstrap (worse) never replaces the trained one.
        let bootstrap = Model::constant(0.3);
        let flat: Vec<f64> = held_out
            .iter()
            .map(|(b, _, _)| bootstrap.score(b))
            .collect();
        let flat = metrics(&flat, &labels);
        assert!(should_promote(&ours, &flat));
        assert!(!should_promote(&flat, &ours));
    }

    #[test]
    fn the_same_examples_give_the_same_model() {
        let mut rng = Rng(7);
        let world = World::new(&mut rng);
        let examples: Vec<Example> = (0..2_000)
            .map(|_| {
                let (bid, label, _) = world.sample(&mut rng);
                (bid.vector(12), label)
            })
            .collect();
        let config = TrainConfig {
            hash_bits: 12,
            ..TrainConfig::default()
        };
        assert_eq!(
            train(&examples, &config, "a"),
            train(&examples, &config, "a")
        );
    }

    #[test]
    fn auc_and_calibration_on_small_known_cases() {
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            0.75
        );
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), 0.5);
        assert!(calibration_error(&[0.25; 4], &[true, false, false, false]) < 1e-12);
    }
}
