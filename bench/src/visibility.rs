//! Time from an event's 200 to its being counted in the report, against a running `sdp local`.
//! Each sample posts one bid for a campaign of its own and polls the report every millisecond.
//! Usage: visibility URL_FOR_API URL_FOR_REPORTS [SAMPLES]

use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, api, reports, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: visibility URL_FOR_API URL_FOR_REPORTS [SAMPLES]");
    };
    let samples: usize = rest.first().map_or(Ok(200), |s| s.parse())?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let base = 9_000_000_000 + i64::from(std::process::id()) * 10_000;
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let campaign = base + i as i64;
        let body =
            format!(r#"{{"tx_id":"vis-{campaign}","app_uid":"u","campaign_item_id":{campaign}}}"#);
        agent
            .post(format!("{api}/bid"))
            .header("content-type", "application/json")
            .send(body.as_str())?;
        let accepted = Instant::now();
        loop {
            let report: serde_json::Value = serde_json::from_str(
                &agent
                    .get(format!("{reports}/reports/campaigns/{campaign}"))
                    .call()?
                    .body_mut()
                    .read_to_string()?,
            )?;
            if report["bids"] == 1 {
                break;
            }
            anyhow::ensure!(
                accepted.elapsed() < Duration::from_secs(10),
                "bid {campaign} never counted"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        times.push(accepted.elapsed());
    }
    times.sort();
    let at =
        |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "visibility_ms p50={:.1} p99={:.1} max={:.1} samples={}",
        at(0.5),
        at(0.99),
        at(1.0),
        times.len()
    );
    Ok(())
}
