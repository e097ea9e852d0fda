//! `GET /reports/campaigns/{campaign_item_id}` and `.../period` (CONTRACT.md §4.2).

use sdp_core::ports::AggregateReader;
use sdp_core::reports::{self, QueryError};

use crate::http::{Request, Response};

/// Answers one reports request at `now` (epoch seconds, the default end of a period query).
pub async fn handle<R: AggregateReader>(reader: &R, request: &Request, now: i64) -> Response {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let (id, by_period) = match segments.as_slice() {
        ["reports", "campaigns", id] => (*id, false),
        ["reports", "campaigns", id, "period"] => (*id, true),
        _ => return Response::not_found(&request.path),
    };
    if request.method != "GET" {
        return Response::method_not_allowed(&request.method, "GET");
    }
    let campaign = match reports::parse_campaign_id(id) {
        Ok(campaign) => campaign,
        Err(err) => return bad_request(&err),
    };
    if !by_period {
        return match reader.campaign(campaign, i64::MIN, i64::MAX).await {
            Ok(rows) => Response::json(200, &reports::totals(campaign, &rows)),
            Err(err) => store_failure(&err),
        };
    }
    let query = match reports::parse_period_query(request.query_pairs(), now) {
        Ok(query) => query,
        Err(err) => return bad_request(&err),
    };
    match reader.campaign(campaign, query.from, query.to).await {
        Ok(rows) => Response::json(200, &reports::by_period(campaign, &rows, &query)),
        Err(err) => store_failure(&err),
    }
}

fn bad_request(err: &QueryError) -> Response {
    Response::error(400, &err.message, Some(err.parameter))
}

fn store_failure(err: &sdp_core::ports::StoreError) -> Response {
    tracing::error!(error = %err, "reading aggregates failed");
    if err.is_transient() {
        Response::error(503, "the aggregates are busy; retry shortly", None)
            .with_header("retry-after", "1")
    } else {
        Response::error(500, "the aggregates could not be read", None)
    }
}

#[cfg(test)]
mod tests {
    use sdp_core::join::Counts;
    use sdp_core::ports::StoreError;
    use sdp_core::reports::WindowCounts;

    use super::*;

    struct Rows(Vec<WindowCounts>);

    impl AggregateReader for Rows {
        async fn campaign(
            &self,
            campaign: i64,
            from: i64,
            to: i64,
        ) -> Result<Vec<WindowCounts>, StoreError> {
            assert_eq!(campaign, 7);
            Ok(self
                .0
                .iter()
                .copied()
                .filter(|r| (from..=to).contains(&r.period))
                .collect())
        }
    }

    fn get(path: &str, query: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            ..Request::default()
        }
    }

    fn rows() -> Rows {
        let c = |bids| Counts {
            bids,
            imps: 1,
            clicks: 0,
        };
        Rows(vec![
            WindowCounts {
                period: 0,
                counts: c(2),
            },
            WindowCounts {
                period: 86_400,
                counts: c(3),
            },
        ])
    }

    #[tokio::test]
    async fn totals_answer_with_the_contract_keys() {
        let response = handle(&rows(), &get("/reports/campaigns/7", &[]), 100_000).await;
        assert_eq!(
            (response.status, response.body.as_str()),
            (
                200,
                r#"{"campaign_item_id":7,"bids":5,"imps":2,"clicks":0}"#
            )
        );
    }

    #[tokio::test]
    async fn periods_are_grouped_and_ordered_as_asked() {
        let response = handle(
            &rows(),
            &get("/reports/campaigns/7/period", &[("desc", "false")]),
            100_000,
        )
        .await;
        assert_eq!(response.status, 200);
        let periods: Vec<i64> = serde_json::from_str::<Vec<serde_json::Value>>(&response.body)
            .unwrap()
            .iter()
            .map(|r| r["period"].as_i64().unwrap())
            .collect();
        assert_eq!(periods, [0, 86_400]);
    }

    #[tokio::test]
    async fn a_non_numeric_id_or_bad_parameter_is_a_400_naming_it() {
        let response = handle(&rows(), &get("/reports/campaigns/abc", &[]), 0).await;
        assert_eq!(response.status, 400);
        assert!(
            response.body.contains(r#""field":"campaign_item_id""#),
            "{}",
            response.body
        );
        let response = handle(
            &rows(),
            &get(
                "/reports/campaigns/7/period",
                &[("timezone", "Nowhere/Land")],
            ),
            0,
        )
        .await;
        assert_eq!(response.status, 400);
        assert!(
            response.body.contains(r#""field":"timezone""#),
            "{}",
            response.body
        );
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        assert_eq!(
            handle(&rows(), &get("/reports/campaigns", &[]), 0)
                .await
                .status,
            404
        );
        assert_eq!(
            handle(&rows(), &get("/reports/campaigns/7/daily", &[]), 0)
                .await
                .status,
            404
        );
    }
}
