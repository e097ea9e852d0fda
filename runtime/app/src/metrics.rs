//! Metrics as CloudWatch embedded-metric-format (EMF) log lines: a function prints one to stdout,
//! and CloudWatch Logs turns it into metrics, so no function needs `cloudwatch:PutMetricData`.

use serde_json::{json, Value};

/// One metric of a line: its name, value and CloudWatch unit (`Count`, `None`, …).
pub struct Metric<'a> {
    pub name: &'a str,
    pub value: Value,
    pub unit: &'a str,
}

/// One EMF line at `now_ms` with `metrics` in `namespace`, dimensioned by `Function`.
pub fn emf_line(namespace: &str, function: &str, now_ms: i64, metrics: &[Metric<'_>]) -> Value {
    let mut line = json!({ "Function": function });
    for metric in metrics {
        line[metric.name] = metric.value.clone();
    }
    let declared: Vec<Value> = metrics
        .iter()
        .map(|m| json!({"Name": m.name, "Unit": m.unit}))
        .collect();
    line["_aws"] = json!({
        "Timestamp": now_ms,
        "CloudWatchMetrics": [{
            "Namespace": namespace,
            "Dimensions": [["Function"]],
            "Metrics": declared,
        }],
    });
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_declares_each_metric_it_carries_under_the_function_dimension() {
        let line = emf_line(
            "sdp/s",
            "processor",
            5,
            &[Metric {
                name: "DeadLetters",
                value: json!(2),
                unit: "Count",
            }],
        );
        assert_eq!(line["DeadLetters"], 2);
        assert_eq!(line["Function"], "processor");
        let emf = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(emf["Namespace"], "sdp/s");
        assert_eq!(emf["Dimensions"], json!([["Function"]]));
        assert_eq!(
            emf["Metrics"],
            json!([{"Name": "DeadLetters", "Unit": "Count"}])
        );
        assert_eq!(line["_aws"]["Timestamp"], 5);
    }
}
