//! Supported regions and their configuration, loaded from the files in `regions/`.
//!
//! The files are embedded in the binary so that `sdp` works from any directory. A region is
//! supported exactly when it has a file; the file stem must equal the `region` it declares.

use serde::{Deserialize, Serialize};

/// The region files, by stem. `tests/` checks that this list and the `regions/` directory agree.
const REGION_FILES: [(&str, &str); 5] = [
    (
        "eu-central-1",
        include_str!("../../regions/eu-central-1.yaml"),
    ),
    ("eu-west-1", include_str!("../../regions/eu-west-1.yaml")),
    ("us-east-1", include_str!("../../regions/us-east-1.yaml")),
    ("us-east-2", include_str!("../../regions/us-east-2.yaml")),
    ("us-west-2", include_str!("../../regions/us-west-2.yaml")),
];

/// The names of the supported regions, sorted.
pub fn supported() -> Vec<&'static str> {
    REGION_FILES.iter().map(|(stem, _)| *stem).collect()
}

/// What differs between regions for sdp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub region: String,
    pub display_name: String,
    /// The AWS partition (`aws`), used in ARNs that CloudFormation cannot build itself.
    pub partition: String,
    pub lambda_architectures: Vec<Architecture>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    #[error("unsupported region `{requested}`; sdp supports: {}", supported().join(", "))]
    Unsupported { requested: String },
    #[error("region file `regions/{stem}.yaml` is not valid")]
    Invalid {
        stem: String,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("region file `regions/{stem}.yaml` declares region `{declared}`; the stem and the region must be equal")]
    StemMismatch { stem: String, declared: String },
}

/// Loads the configuration of `region`, refusing any region without a file. Makes no network call.
pub fn load(region: &str) -> Result<RegionConfig, RegionError> {
    let (stem, text) = REGION_FILES
        .iter()
        .find(|(stem, _)| *stem == region)
        .ok_or_else(|| RegionError::Unsupported {
            requested: region.to_owned(),
        })?;
    parse(stem, text)
}

/// Parses one region file, checking that its stem and its `region` agree.
pub fn parse(stem: &str, text: &str) -> Result<RegionConfig, RegionError> {
    let config: RegionConfig =
        serde_yaml_ng::from_str(text).map_err(|source| RegionError::Invalid {
            stem: stem.to_owned(),
            source,
        })?;
    if config.region != stem {
        return Err(RegionError::StemMismatch {
            stem: stem.to_owned(),
            declared: config.region,
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_region_file_loads() {
        for region in supported() {
            assert_eq!(load(region).unwrap().region, region);
        }
    }

    #[test]
    fn the_five_contract_regions_are_supported() {
        assert_eq!(
            supported(),
            [
                "eu-central-1",
                "eu-west-1",
                "us-east-1",
                "us-east-2",
                "us-west-2"
            ]
        );
    }

    #[test]
    fn an_unsupported_region_is_refused_with_the_supported_list() {
        let message = load("ap-south-1").unwrap_err().to_string();
        assert_eq!(
            message,
            "unsupported region `ap-south-1`; sdp supports: eu-central-1, eu-west-1, us-east-1, us-east-2, us-west-2"
        );
    }

    #[test]
    fn a_file_whose_stem_differs_from_its_region_is_refused() {
        let text =
            "region: us-east-1\ndisplay_name: x\npartition: aws\nlambda_architectures: [arm64]\n";
        let err = parse("us-west-2", text).unwrap_err();
        assert!(matches!(err, RegionError::StemMismatch { .. }), "{err}");
    }

    #[test]
    fn an_unknown_key_in_a_region_file_is_refused() {
        let text = "region: us-west-2\ndisplay_name: x\npartition: aws\nlambda_architectures: [arm64]\nzone: a\n";
        assert!(parse("us-west-2", text).is_err());
    }
}
