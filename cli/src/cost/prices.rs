//! Unit prices per region, from `regions/prices/<region>.yaml`: one file per region, each with
//! the date it was read and the public page of every service. Embedded, like the region files,
//! so `sdp cost` works from any directory and offline.

use serde::Deserialize;

/// The price files, by region. `tests/` checks that this list and `regions/prices/` agree.
const PRICE_FILES: [(&str, &str); 3] = [
    (
        "us-east-1",
        include_str!("../../../regions/prices/us-east-1.yaml"),
    ),
    (
        "us-east-2",
        include_str!("../../../regions/prices/us-east-2.yaml"),
    ),
    (
        "us-west-2",
        include_str!("../../../regions/prices/us-west-2.yaml"),
    ),
];

/// The regions with a price file, sorted.
pub fn priced() -> Vec<&'static str> {
    PRICE_FILES.iter().map(|(region, _)| *region).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("no price file for `{region}`: `sdp cost` has prices for {} (regions/prices/)", priced().join(", "))]
    Unpriced { region: String },
    #[error("price file `regions/prices/{region}.yaml` is not valid")]
    Invalid {
        region: String,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("price file `regions/prices/{file}.yaml` declares region `{declared}`")]
    Mismatch { file: String, declared: String },
    #[error("price file `regions/prices/{0}.yaml`: the tiers of `{1}` must rise and end with one without `up_to`")]
    Tiers(String, &'static str),
}

/// Loads the prices of `region`.
pub fn load(region: &str) -> Result<Prices, PriceError> {
    let (file, text) = PRICE_FILES
        .iter()
        .find(|(file, _)| *file == region)
        .ok_or_else(|| PriceError::Unpriced {
            region: region.to_owned(),
        })?;
    parse(file, text)
}

/// Parses one price file, checking its region and its tiers.
pub fn parse(file: &str, text: &str) -> Result<Prices, PriceError> {
    let prices: Prices = serde_yaml_ng::from_str(text).map_err(|source| PriceError::Invalid {
        region: file.to_owned(),
        source,
    })?;
    if prices.region != file {
        return Err(PriceError::Mismatch {
            file: file.to_owned(),
            declared: prices.region,
        });
    }
    if !prices.api_gateway.rest_requests_per_million.is_valid() {
        return Err(PriceError::Tiers(
            file.to_owned(),
            "api_gateway.rest_requests_per_million",
        ));
    }
    Ok(prices)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub region: String,
    /// When the prices were read from their pages (YYYY-MM-DD).
    pub as_of: String,
    pub api_gateway: ApiGateway,
    pub lambda: Lambda,
    pub kinesis: Kinesis,
    pub dynamodb: DynamoDb,
    pub firehose: Firehose,
    pub s3: S3,
    pub cloudwatch: CloudWatch,
    pub xray: XRay,
    pub kms: Kms,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiGateway {
    pub source: String,
    pub rest_requests_per_million: Tiers,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lambda {
    pub source: String,
    pub requests_per_million: f64,
    pub gb_second_x86_64: f64,
    pub gb_second_arm64: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kinesis {
    pub source: String,
    pub shard_hour: f64,
    pub put_payload_units_per_million: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoDb {
    pub source: String,
    pub write_request_units_per_million: f64,
    pub read_request_units_per_million: f64,
    pub storage_gb_month: f64,
    pub write_capacity_unit_hour: f64,
    pub read_capacity_unit_hour: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firehose {
    pub source: String,
    pub ingested_gb: f64,
    pub dynamic_partitioning_gb: f64,
    pub dynamic_partitioning_objects_per_thousand: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3 {
    pub source: String,
    pub storage_gb_month: f64,
    pub put_copy_post_list_per_thousand: f64,
    pub get_per_thousand: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatch {
    pub source: String,
    pub logs_ingested_gb: f64,
    pub logs_stored_gb_month: f64,
    pub alarm_month: f64,
    pub dashboard_month: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XRay {
    pub source: String,
    pub traces_recorded_per_million: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kms {
    pub source: String,
    pub key_month: f64,
    pub requests_per_10k: f64,
}

/// A price by volume tier: each tier's price applies to the part of the month's quantity within it.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Tiers(Vec<Tier>);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The quantity at which the next tier starts; none for the last.
    #[serde(default)]
    pub up_to: Option<f64>,
    pub price: f64,
}

impl Tiers {
    fn is_valid(&self) -> bool {
        let mut previous = 0.0;
        for (i, tier) in self.0.iter().enumerate() {
            let last = i + 1 == self.0.len();
            match tier.up_to {
                None if last => return true,
                Some(bound) if !last && bound > previous => previous = bound,
                _ => return false,
            }
        }
        false
    }

    /// What `quantity` costs over the tiers.
    pub fn cost(&self, quantity: f64) -> f64 {
        let mut cost = 0.0;
        let mut start = 0.0;
        for tier in &self.0 {
            let end = tier.up_to.unwrap_or(f64::INFINITY);
            if quantity > start {
                cost += (quantity.min(end) - start) * tier.price;
            }
            start = end;
        }
        cost
    }

    /// The first tier's price, for display.
    pub fn first(&self) -> f64 {
        self.0.first().map_or(0.0, |t| t.price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_price_file_parses_and_names_its_region() {
        for region in priced() {
            let prices = load(region).unwrap_or_else(|e| panic!("{region}: {e}"));
            assert_eq!(prices.region, region);
        }
        assert!(matches!(
            load("ap-south-1"),
            Err(PriceError::Unpriced { .. })
        ));
    }

    #[test]
    fn tiers_price_each_part_of_the_quantity_at_its_own_rate() {
        let prices = load("us-east-1").unwrap();
        let tiers = &prices.api_gateway.rest_requests_per_million;
        assert!((tiers.cost(100.0) - 350.0).abs() < 1e-9);
        // 333 M at 3.50, 667 M at 2.80, 500 M at 2.38.
        let expected = 333.0 * 3.50 + 667.0 * 2.80 + 500.0 * 2.38;
        assert!((tiers.cost(1500.0) - expected).abs() < 1e-6);
    }

    #[test]
    fn tiers_that_do_not_rise_or_do_not_end_open_are_refused() {
        let text = load_text("us-east-1").replace(
            "{ up_to: 1000, price: 2.80 }",
            "{ up_to: 100, price: 2.80 }",
        );
        assert!(matches!(
            parse("us-east-1", &text),
            Err(PriceError::Tiers(..))
        ));
        let text =
            load_text("us-east-1").replace("- { price: 1.51 }", "- { up_to: 30000, price: 1.51 }");
        assert!(matches!(
            parse("us-east-1", &text),
            Err(PriceError::Tiers(..))
        ));
    }

    fn load_text(region: &str) -> String {
        PRICE_FILES
            .iter()
            .find(|(r, _)| *r == region)
            .map(|(_, text)| (*text).to_owned())
            .unwrap_or_default()
    }
}
