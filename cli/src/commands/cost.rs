//! `sdp cost`: a month's bill of a deployment for a steady workload, line by line.

use anyhow::anyhow;

use crate::args::{CostArchitecture, CostArgs, CostCapacity, ReportFormat};
use crate::cost::estimate::{estimate, Capacity, Estimate};
use crate::cost::prices;
use crate::cost::sizes::Sizes;
use crate::cost::usage::Workload;
use crate::exit::Failure;
use crate::regions::{self, Architecture};
use sdp_core::events::MAX_BATCH_EVENTS;

pub fn run(args: &CostArgs) -> Result<(), Failure> {
    let bad = |flag: &str, why: String| Failure::CouldNotRun(anyhow!("{flag}: {why}"));
    if !args.events_per_second.is_finite() || args.events_per_second < 0.0 {
        return Err(bad(
            "--events-per-second",
            format!(
                "{} is not a number of events per second",
                args.events_per_second
            ),
        ));
    }
    if !(1..=MAX_BATCH_EVENTS).contains(&args.batch_size) {
        return Err(bad(
            "--batch-size",
            format!("must be 1 to {MAX_BATCH_EVENTS} events per request"),
        ));
    }
    if args.campaigns == 0 {
        return Err(bad("--campaigns", "must be at least 1".to_owned()));
    }
    let region = regions::load(&args.region).map_err(|e| Failure::CouldNotRun(e.into()))?;
    let architecture = match args.architecture {
        CostArchitecture::X86_64 => Architecture::X86_64,
        CostArchitecture::Arm64 => Architecture::Arm64,
    };
    if !region.lambda_architectures.contains(&architecture) {
        return Err(bad(
            "--architecture",
            format!("Lambda in {} does not offer it", region.region),
        ));
    }
    let prices = prices::load(&region.region).map_err(|e| Failure::CouldNotRun(e.into()))?;
    let sizes = Sizes::of_load_traffic()
        .map_err(|e| Failure::Failed(e.context("measuring the sample traffic failed")))?;
    let needed = Workload::shards_needed(args.events_per_second, args.batch_size as f64, &sizes);
    let shards = match args.shards {
        None => needed,
        Some(given) if f64::from(given) >= needed => f64::from(given),
        Some(given) => {
            return Err(bad(
                "--shards",
                format!(
                    "{given} shard(s) cannot carry {} events/s; it takes {needed}",
                    args.events_per_second
                ),
            ))
        }
    };
    let workload = Workload {
        events_per_second: args.events_per_second,
        batch_size: args.batch_size as f64,
        campaigns: f64::from(args.campaigns),
        shards,
    };
    let capacity = match args.capacity {
        CostCapacity::OnDemand => Capacity::OnDemand,
        CostCapacity::Provisioned => Capacity::Provisioned,
    };
    let bill = estimate(&workload, &sizes, &prices, architecture, capacity);
    match args.format {
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&bill).map_err(|e| Failure::Failed(e.into()))?
        ),
        ReportFormat::Text => print!("{}", table(&bill)),
    }
    Ok(())
}

/// The bill as a table for a terminal.
fn table(bill: &Estimate) -> String {
    let mut out = format!(
        "sdp cost: {} events/s ({} a month) in requests of {}, {} campaign(s), {} shard(s), DynamoDB {}, {}\n\n",
        amount(bill.events_per_second),
        amount(bill.events_per_month),
        bill.batch_size,
        bill.campaigns,
        bill.shards,
        match bill.capacity {
            Capacity::OnDemand => "on demand",
            Capacity::Provisioned => "provisioned",
        },
        bill.region,
    );
    out.push_str(&format!(
        "{:<12} {:<42} {:>16} {:<12} {:>12}\n",
        "service", "item", "a month", "unit", "USD"
    ));
    for line in &bill.lines {
        out.push_str(&format!(
            "{:<12} {:<42} {:>16} {:<12} {:>12.2}\n",
            line.service,
            line.item,
            amount(line.quantity),
            line.unit,
            line.usd
        ));
    }
    out.push_str(&format!(
        "{:<88} {:>12.2}\n",
        "total a month", bill.total_usd
    ));
    if let Some(per_million) = bill.usd_per_million_events {
        out.push_str(&format!(
            "{:<88} {:>12.4}\n",
            "per million events", per_million
        ));
    }
    out.push_str(&format!(
        "{:<88} {:>12.2}\n",
        "idle (the same stack, no traffic) a month", bill.idle_usd
    ));
    let p = &bill.per_event;
    out.push_str(&format!(
        "\nper event: {:.3} API requests, {:.2} stream records, {:.2} PUT payload units, {:.2} RRU, {:.2} WRU, {:.0} Firehose bytes billed\n",
        p.api_requests,
        p.stream_records,
        p.put_payload_units,
        p.read_request_units,
        p.write_request_units,
        p.stream_delivery_billed_bytes + p.processor_delivery_billed_bytes
    ));
    out.push_str(&format!(
        "prices: regions/prices/{}.yaml (read {}); assumed, not measured:\n",
        bill.region, bill.prices_as_of
    ));
    for assumption in &bill.assumptions {
        out.push_str(&format!("  - {assumption}\n"));
    }
    out
}

/// A quantity with its magnitude: 1,234 / 12.3 M / 4.56 B.
fn amount(x: f64) -> String {
    match x.abs() {
        a if a >= 1e9 => format!("{:.2} B", x / 1e9),
        a if a >= 1e6 => format!("{:.2} M", x / 1e6),
        a if a >= 1e4 => format!("{:.0}", x),
        a if a >= 10.0 => format!("{:.1}", x),
        _ => format!("{:.3}", x),
    }
}
