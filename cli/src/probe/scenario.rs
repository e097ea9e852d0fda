//! The original's integration scenario, tagged so that one run cannot be confused with another
//! or with real traffic: N bids, M of them with an impression, K of those with a click, every
//! seventh request sent twice, and invalid requests mixed in, each with the status the contract
//! documents for it (CONTRACT §4.1, §4.3).

use serde_json::json;

/// One run's identity: its transaction ids start with `prefix` and its bids are for `campaign`,
/// a campaign no one else uses, so the report for it counts this run alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub prefix: String,
    pub campaign: i64,
}

impl Tag {
    /// A tag for a run of `command` (`verify`, `load`), from the clock and a per-process
    /// number. The campaign stays below 2^53, so every JSON reader keeps it exact, and leaves
    /// room for the few consecutive campaigns a load run uses.
    pub fn new(command: &str, now_ms: i64, unique: u32) -> Tag {
        let campaign = now_ms.rem_euclid(1 << 42) * 1000 + i64::from(unique % 100) * 10;
        Tag {
            prefix: format!("sdp-{command}-{campaign}"),
            campaign,
        }
    }
}

/// A request to the ingestion API: `route` is `bid`, `impression` or `click`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub route: &'static str,
    pub content_type: &'static str,
    pub body: String,
    pub expect: Expect,
}

/// What the contract says the answer must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Accepted (200).
    Stored,
    /// Refused with `status`; for a 400, the error names `field` when there is one at fault.
    Refused {
        what: &'static str,
        status: u16,
        field: Option<&'static str>,
    },
}

/// The counts the report must reach.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub bids: i64,
    pub imps: i64,
    pub clicks: i64,
}

impl std::ops::Add for Counts {
    type Output = Counts;

    fn add(self, other: Counts) -> Counts {
        Counts {
            bids: self.bids + other.bids,
            imps: self.imps + other.imps,
            clicks: self.clicks + other.clicks,
        }
    }
}

/// The requests of one run, valid and invalid interleaved, and the counts they must produce.
pub fn requests(tag: &Tag, bids: usize, imps: usize, clicks: usize) -> (Vec<Post>, Counts) {
    let imps = imps.min(bids);
    let clicks = clicks.min(imps);
    let stored = |route, body: serde_json::Value| Post {
        route,
        content_type: "application/json",
        body: body.to_string(),
        expect: Expect::Stored,
    };
    let mut valid = Vec::new();
    for i in 0..bids {
        let tx = format!("{}-{i:05}", tag.prefix);
        valid.push(stored(
            "bid",
            json!({"tx_id": tx, "app_uid": "sdp-verify", "campaign_item_id": tag.campaign,
                   "domain": "verify.example", "creative_id": "creative",
                   "creative_category": "verification", "win_price": 100}),
        ));
        if i < imps {
            valid.push(stored("impression", json!({"tx_id": tx, "win_price": 90})));
        }
        if i < clicks {
            valid.push(stored("click", json!({"tx_id": tx})));
        }
    }
    // Retries: the same event again must not count again.
    let retries: Vec<Post> = valid.iter().step_by(7).cloned().collect();
    valid.extend(retries);

    let invalid = invalid_requests(tag);
    // Spread the invalid requests through the valid ones, so they are sent among them.
    let mut all = Vec::with_capacity(valid.len() + invalid.len());
    let gap = valid.len() / (invalid.len() + 1) + 1;
    let mut invalid = invalid.into_iter();
    for (i, post) in valid.into_iter().enumerate() {
        if i > 0 && i % gap == 0 {
            all.extend(invalid.next());
        }
        all.push(post);
    }
    all.extend(invalid);
    let counts = Counts {
        bids: bids as i64,
        imps: imps as i64,
        clicks: clicks as i64,
    };
    (all, counts)
}

/// Requests the ingestion API must refuse. Each would be counted if it were stored (they are
/// for the run's campaign and transactions), so a server that stores them fails the counts too.
fn invalid_requests(tag: &Tag) -> Vec<Post> {
    let refused = |what, route, content_type, body: String, status, field| Post {
        route,
        content_type,
        body,
        expect: Expect::Refused {
            what,
            status,
            field,
        },
    };
    let tx = format!("{}-invalid", tag.prefix);
    vec![
        refused(
            "a bid without tx_id",
            "bid",
            "application/json",
            json!({"app_uid": "sdp-verify", "campaign_item_id": tag.campaign}).to_string(),
            400,
            Some("tx_id"),
        ),
        refused(
            "a bid whose campaign_item_id is a string",
            "bid",
            "application/json",
            json!({"tx_id": tx, "app_uid": "sdp-verify", "campaign_item_id": "abc"}).to_string(),
            400,
            Some("campaign_item_id"),
        ),
        refused(
            "an impression with a negative win_price",
            "impression",
            "application/json",
            json!({"tx_id": format!("{}-00000", tag.prefix), "win_price": -1}).to_string(),
            400,
            Some("win_price"),
        ),
        refused(
            "a click posted with type bid",
            "click",
            "application/json",
            json!({"tx_id": format!("{}-00001", tag.prefix), "type": "bid"}).to_string(),
            400,
            Some("type"),
        ),
        refused(
            "a body that is not JSON",
            "bid",
            "application/json",
            format!("{{\"tx_id\": \"{tx}\", "),
            400,
            None,
        ),
        refused(
            "a bid sent as text/plain",
            "bid",
            "text/plain",
            json!({"tx_id": tx, "app_uid": "sdp-verify", "campaign_item_id": tag.campaign})
                .to_string(),
            415,
            None,
        ),
    ]
}

/// A batch for the batch route, and what its answer must say: the status, and line by line
/// whether it was accepted or rejected (naming `field`, when one is at fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub what: &'static str,
    pub lines: Vec<String>,
    pub status: u16,
    pub expect: Vec<Line>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    Accepted,
    Rejected { field: Option<&'static str> },
}

/// The batches of one run, for the run's campaign with transactions of their own: a batch with a
/// repeated line and invalid lines (207), the same batch again as a client's retry (207 again,
/// counted once), one of valid lines only (200), one of invalid lines only (400, nothing stored);
/// and the counts they add.
pub fn batches(tag: &Tag) -> (Vec<Batch>, Counts) {
    let (bids, imps, clicks) = (20, 10, 4);
    let tx = |i: usize| format!("{}-batch-{i:03}", tag.prefix);
    let mut lines = Vec::new();
    for i in 0..bids {
        lines.push(
            json!({"type": "bid", "tx_id": tx(i), "app_uid": "sdp-verify",
                   "campaign_item_id": tag.campaign, "domain": "verify.example"})
            .to_string(),
        );
        if i < imps {
            lines.push(json!({"type": "imp", "tx_id": tx(i), "win_price": 90}).to_string());
        }
    }
    let mut expect = vec![Line::Accepted; lines.len() + 1];
    lines.push(lines[0].clone());
    let invalid = [
        (
            json!({"type": "bid", "tx_id": tx(bids), "app_uid": "sdp-verify"}).to_string(),
            Some("campaign_item_id"),
        ),
        (
            json!({"type": "view", "tx_id": tx(bids)}).to_string(),
            Some("type"),
        ),
        (
            format!("{{\"type\": \"click\", \"tx_id\": \"{}\"", tx(0)),
            None,
        ),
    ];
    for (line, field) in &invalid {
        lines.push(line.clone());
        expect.push(Line::Rejected { field: *field });
    }
    let mixed = Batch {
        what: "a batch with a repeated line and invalid lines",
        lines,
        status: 207,
        expect,
    };
    let retried = Batch {
        what: "the same batch again",
        ..mixed.clone()
    };
    let valid = Batch {
        what: "a batch of clicks",
        lines: (0..clicks)
            .map(|i| json!({"type": "click", "tx_id": tx(i)}).to_string())
            .collect(),
        status: 200,
        expect: vec![Line::Accepted; clicks],
    };
    let refused = Batch {
        what: "a batch of invalid lines only",
        lines: invalid.iter().map(|(line, _)| line.clone()).collect(),
        status: 400,
        expect: invalid
            .iter()
            .map(|(_, field)| Line::Rejected { field: *field })
            .collect(),
    };
    let counts = Counts {
        bids: bids as i64,
        imps: imps as i64,
        clicks: clicks as i64,
    };
    (vec![mixed, retried, valid, refused], counts)
}

/// A prediction request the API must answer, and one it must refuse for its missing `winPrice`.
pub fn prediction_requests(tag: &Tag) -> (String, String) {
    let campaign = tag.campaign.to_string();
    (
        json!({"campaignItemId": campaign, "domain": "verify.example", "creativeId": "creative",
               "creativeCategory": "verification", "winPrice": 100})
        .to_string(),
        json!({"campaignItemId": campaign, "domain": "verify.example", "creativeId": "creative",
               "creativeCategory": "verification"})
        .to_string(),
    )
}

/// Whether a prediction answer has the documented shape:
/// `{"predictions":[{"score": 0..1, "predicted_label": 0 or 1}]}`. The reason when not.
pub fn check_prediction(answer: &serde_json::Value) -> Result<(), String> {
    let first = &answer["predictions"][0];
    let score = first["score"]
        .as_f64()
        .ok_or_else(|| format!("no numeric predictions[0].score in {answer}"))?;
    if !(0.0..=1.0).contains(&score) {
        return Err(format!("the score {score} is not a probability"));
    }
    match first["predicted_label"].as_f64() {
        Some(label) if label == 0.0 || label == 1.0 => Ok(()),
        _ => Err(format!(
            "predictions[0].predicted_label is not 0 or 1 in {answer}"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_scenario_counts_each_transaction_once_and_mixes_in_every_invalid_case() {
        let tag = Tag::new("verify", 1_763_800_000_000, 4242);
        let (posts, counts) = requests(&tag, 100, 60, 25);
        assert_eq!(
            counts,
            Counts {
                bids: 100,
                imps: 60,
                clicks: 25
            }
        );
        let valid: Vec<&Post> = posts
            .iter()
            .filter(|p| p.expect == Expect::Stored)
            .collect();
        assert_eq!(
            valid.len(),
            185 + 185_usize.div_ceil(7),
            "every 7th sent twice"
        );
        let invalid: Vec<usize> = posts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.expect != Expect::Stored)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(invalid.len(), 6);
        assert!(
            invalid[0] > 0 && invalid[5] < posts.len() - 1,
            "mixed in, not at the ends: {invalid:?}"
        );
        assert!(posts
            .iter()
            .filter(|p| p.route == "bid" && p.expect == Expect::Stored)
            .all(|p| p
                .body
                .contains(&format!("\"campaign_item_id\":{}", tag.campaign))));
    }

    #[test]
    fn the_batches_expect_one_answer_per_line_and_count_their_transactions_once() {
        let tag = Tag::new("verify", 1_763_800_000_000, 4242);
        let (batches, counts) = batches(&tag);
        assert_eq!(
            counts,
            Counts {
                bids: 20,
                imps: 10,
                clicks: 4
            }
        );
        for batch in &batches {
            assert_eq!(batch.lines.len(), batch.expect.len(), "{}", batch.what);
        }
        assert_eq!(
            batches.iter().map(|b| b.status).collect::<Vec<_>>(),
            [207, 207, 200, 400]
        );
        assert_eq!(
            batches[0].lines, batches[1].lines,
            "a retry resends the batch as it was"
        );
    }

    #[test]
    fn tags_are_distinct_and_json_safe() {
        let a = Tag::new("verify", 1_763_800_000_000, 1);
        let b = Tag::new("verify", 1_763_800_000_001, 1);
        assert_ne!(a.campaign, b.campaign);
        assert!(a.campaign < (1 << 53) && a.campaign >= 0);
    }

    #[test]
    fn a_prediction_answer_must_have_the_documented_shape() {
        let ok = json!({"predictions": [{"score": 0.3, "predicted_label": 0.0}]});
        assert!(check_prediction(&ok).is_ok());
        let bad = json!({"predictions": [{"score": 3.0, "predicted_label": 1.0}]});
        assert!(check_prediction(&bad)
            .unwrap_err()
            .contains("not a probability"));
        assert!(check_prediction(&json!({"score": 0.5})).is_err());
    }
}
