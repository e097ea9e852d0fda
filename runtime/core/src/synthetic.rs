//! A known logistic world: bids whose win probability follows a fixed logistic model of their
//! attributes, drawn by a deterministic generator. The training tests measure the trained model
//! against the generating one on the same sample, and the model benchmark trains sdp and
//! scikit-learn on the same rows.

use crate::model::{sigmoid, BidFeatures};

/// A deterministic generator (xorshift) with normal deviates (Box–Muller).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A known logistic model over bid attributes, and samples drawn from it.
pub struct World {
    campaign: Vec<f64>,
    domain: Vec<f64>,
    creative: Vec<f64>,
    category: Vec<f64>,
    hour: Vec<f64>,
}

impl World {
    pub fn new(rng: &mut Rng) -> World {
        let mut effects = |n: usize, scale: f64| (0..n).map(|_| rng.normal() * scale).collect();
        World {
            campaign: effects(20, 0.8),
            domain: effects(50, 0.6),
            creative: effects(30, 0.4),
            category: effects(5, 0.3),
            hour: effects(24, 0.2),
        }
    }

    /// (features, label, true probability)
    pub fn sample(&self, rng: &mut Rng) -> (BidFeatures, bool, f64) {
        let (c, d, cr, ca, h) = (
            rng.below(20),
            rng.below(50),
            rng.below(30),
            rng.below(5),
            rng.below(24),
        );
        let price = (rng.uniform() * 400.0).round();
        let z = -1.5
            + self.campaign[c]
            + self.domain[d]
            + self.creative[cr]
            + self.category[ca]
            + self.hour[h]
            + 0.6 * (price.ln_1p() - 4.5);
        let p = sigmoid(z);
        let bid = BidFeatures {
            campaign_item_id: c.to_string(),
            domain: format!("d{d}.example"),
            creative_id: format!("cr{cr}"),
            creative_category: format!("cat{ca}"),
            win_price: price,
            hour: h as u8,
        };
        (bid, rng.uniform() < p, p)
    }
}
