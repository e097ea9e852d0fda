//! The win-probability model: which features a bid has, the model file, and scoring.
//!
//! Features are only what is known when the bid is made (CONTRACT.md §5.4): the bid's campaign,
//! domain, creative and category, the price offered, and the hour of day. Categorical values are
//! hashed into a fixed number of weights (no vocabulary to ship or grow). A model file names the
//! features it was trained on, and [`Model::check`] refuses any name outside [`BID_TIME_FEATURES`],
//! so a model trained on something learned after the auction (the original's leak) never serves.

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventBody};

/// The features a model may use: each is known at bid time.
pub const BID_TIME_FEATURES: &[&str] = &[
    "campaign_item_id",
    "domain",
    "creative_id",
    "creative_category",
    "win_price",
    "hour",
];

/// The format name and version written in every model file.
pub const FORMAT: &str = "sdp-win-model";
pub const FORMAT_VERSION: u32 = 1;

/// Hashed weights: 2^18, plenty for campaigns × domains × creatives, 1 MiB as f32.
pub const DEFAULT_HASH_BITS: u32 = 18;

/// What a bid looks like to the model: its attributes at bid time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BidFeatures {
    pub campaign_item_id: String,
    pub domain: String,
    pub creative_id: String,
    pub creative_category: String,
    /// The price offered with the bid.
    pub win_price: f64,
    /// Hour of day, UTC, 0–23.
    pub hour: u8,
}

/// A sparse feature vector: (weight index, value).
pub type Vector = Vec<(u32, f64)>;

/// The hour of day (UTC, 0–23) of an epoch-millisecond time: the `hour` feature.
pub fn hour_of_day(ts_ms: i64) -> u8 {
    u8::try_from(ts_ms.rem_euclid(86_400_000) / 3_600_000).unwrap_or(0)
}

impl BidFeatures {
    /// The features of a stored bid event (None for an impression or a click). Attributes the
    /// client left out are empty, and a bid without a price offered none.
    pub fn of_bid(event: &Event) -> Option<BidFeatures> {
        let EventBody::Bid(bid) = &event.body else {
            return None;
        };
        Some(BidFeatures::of_attributes(
            bid.campaign_item_id,
            bid.domain.as_deref(),
            bid.creative_id.as_deref(),
            bid.creative_category.as_deref(),
            bid.win_price,
            event.ts,
        ))
    }

    /// The features of a bid from its stored attributes (a raw event, or a row of the lake's
    /// `bcns` table): absent attributes are empty, an absent price is none offered.
    pub fn of_attributes(
        campaign_item_id: i64,
        domain: Option<&str>,
        creative_id: Option<&str>,
        creative_category: Option<&str>,
        win_price: Option<i64>,
        ts_ms: i64,
    ) -> BidFeatures {
        BidFeatures {
            campaign_item_id: campaign_item_id.to_string(),
            domain: domain.unwrap_or_default().to_owned(),
            creative_id: creative_id.unwrap_or_default().to_owned(),
            creative_category: creative_category.unwrap_or_default().to_owned(),
            win_price: win_price.unwrap_or(0) as f64,
            hour: hour_of_day(ts_ms),
        }
    }

    /// The hashed, scaled feature vector, with `hash_bits` bits of index.
    pub fn vector(&self, hash_bits: u32) -> Vector {
        let mask = (1_u64 << hash_bits) - 1;
        let index = |key: &str| u32::try_from(stable_hash(key.as_bytes()) & mask).unwrap_or(0);
        let values: [(&str, String); 5] = [
            ("campaign_item_id", self.campaign_item_id.clone()),
            ("domain", self.domain.clone()),
            ("creative_id", self.creative_id.clone()),
            ("creative_category", self.creative_category.clone()),
            ("hour", self.hour.to_string()),
        ];
        let mut vector: Vector = values
            .iter()
            .map(|(name, value)| (index(&format!("{name}={value}")), 1.0))
            .collect();
        // Prices span orders of magnitude: log scale keeps one weight meaningful across them.
        vector.push((index("win_price"), (self.win_price.max(0.0)).ln_1p()));
        vector
    }
}

/// FNV-1a, 64 bits: a stable hash (the same value on every machine and release), for feature
/// indexes and names derived from content.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How well a model did on held-out data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub log_loss: f64,
    pub auc: f64,
    /// Expected calibration error over ten equal-width score bins.
    pub calibration_error: f64,
    pub rows: usize,
}

/// A trained model, as stored: self-describing, versioned, and only nonzero weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub format: String,
    pub format_version: u32,
    /// An identifier of this model. The trainer's sort by time: `<UTC time>-<hash of its input
    /// files>`.
    pub version: String,
    pub features: Vec<String>,
    pub hash_bits: u32,
    pub bias: f64,
    /// (index, weight) of every nonzero weight, by index.
    pub weights: Vec<(u32, f64)>,
    pub metrics: Option<Metrics>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("not an sdp model file (format `{0}`)")]
    Format(String),
    #[error("model format version {0} is not supported (this build reads {FORMAT_VERSION})")]
    Version(u32),
    #[error("feature `{0}` is not known at bid time; a model using it would leak the label")]
    NotBidTime(String),
    #[error("hash_bits {0} is out of range (1–24)")]
    HashBits(u32),
}

impl Model {
    /// A model with no information: every bid scores `base_rate`. The stack ships one, so
    /// predictions answer from the first minute; training replaces it.
    pub fn constant(base_rate: f64) -> Model {
        let p = base_rate.clamp(1e-6, 1.0 - 1e-6);
        Model {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            version: "bootstrap".into(),
            features: BID_TIME_FEATURES.iter().map(|f| (*f).to_owned()).collect(),
            hash_bits: DEFAULT_HASH_BITS,
            bias: (p / (1.0 - p)).ln(),
            weights: Vec::new(),
            metrics: None,
        }
    }

    /// Refuses a file this build must not serve: another format, a newer version, or a feature
    /// not known at bid time.
    pub fn check(&self) -> Result<(), ModelError> {
        if self.format != FORMAT {
            return Err(ModelError::Format(self.format.clone()));
        }
        if self.format_version != FORMAT_VERSION {
            return Err(ModelError::Version(self.format_version));
        }
        if !(1..=24).contains(&self.hash_bits) {
            return Err(ModelError::HashBits(self.hash_bits));
        }
        if let Some(leak) = self
            .features
            .iter()
            .find(|f| !BID_TIME_FEATURES.contains(&f.as_str()))
        {
            return Err(ModelError::NotBidTime(leak.clone()));
        }
        Ok(())
    }

    /// The probability that the bid wins.
    pub fn score(&self, bid: &BidFeatures) -> f64 {
        self.score_vector(&bid.vector(self.hash_bits))
    }

    pub fn score_vector(&self, vector: &Vector) -> f64 {
        let weight = |index: u32| {
            self.weights
                .binary_search_by_key(&index, |(i, _)| *i)
                .map_or(0.0, |at| self.weights[at].1)
        };
        sigmoid(self.bias + vector.iter().map(|(i, v)| weight(*i) * v).sum::<f64>())
    }
}

/// The logistic function, without overflow for large |z|.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid() -> BidFeatures {
        BidFeatures {
            campaign_item_id: "1463517".into(),
            domain: "example.com".into(),
            creative_id: "c1".into(),
            creative_category: "games".into(),
            win_price: 100.0,
            hour: 13,
        }
    }

    #[test]
    fn the_constant_model_scores_its_base_rate_and_passes_the_check() {
        let model = Model::constant(0.25);
        assert!((model.score(&bid()) - 0.25).abs() < 1e-12);
        assert_eq!(model.check(), Ok(()));
    }

    #[test]
    fn a_model_with_a_feature_known_only_after_the_auction_is_refused() {
        let mut model = Model::constant(0.5);
        model.features.push("impression_win_price".into());
        assert_eq!(
            model.check(),
            Err(ModelError::NotBidTime("impression_win_price".into()))
        );
    }

    #[test]
    fn feature_indexes_are_stable_and_within_the_hash_space() {
        let v = bid().vector(18);
        assert_eq!(v.len(), BID_TIME_FEATURES.len());
        assert!(v.iter().all(|(i, _)| *i < (1 << 18)));
        assert_eq!(v, bid().vector(18), "the same bid, the same vector");
        // FNV-1a's published test vectors: the indexes do not depend on the platform or release,
        // so a model trained by one build scores the same bid the same way in the next.
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_sigmoid_is_finite_everywhere() {
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
    }
}
