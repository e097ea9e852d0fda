//! A month's bill, line by line: [`usage`](super::usage)'s units for the workload, priced from
//! the region's price file, with the assumptions behind what no test can measure.

use serde::Serialize;

use super::prices::Prices;
use super::sizes::Sizes;
use super::usage::{self, per_event, stack, PerEvent, Workload, SECONDS_PER_MONTH};
use crate::regions::Architecture;

/// What no test here can measure, with the figure the model takes. Printed with every estimate.
pub mod assumed {
    /// Milliseconds an ingestion request runs: one `PutRecords` round trip (~15 ms) and, per
    /// event, its validation and share of the call.
    pub fn ingest_ms(batch: f64) -> f64 {
        15.0 + 0.05 * batch
    }
    /// Milliseconds a processor invocation runs: its Firehose puts (~60 ms), per event its
    /// share of the `BatchGetItem`s and the transactions (~0.6 ms), and the aggregates' totals
    /// (a `BatchGetItem` per 100, ~10 ms).
    pub fn processor_ms(events: f64, aggregates: f64) -> f64 {
        60.0 + 0.6 * events + 0.1 * aggregates
    }
    /// A compactor run with nothing to compact (its listings), and the raw JSON it compacts a
    /// second otherwise.
    pub const COMPACTOR_IDLE_SECONDS: f64 = 2.0;
    pub const COMPACTED_BYTES_PER_SECOND: f64 = 20e6;
    /// A training round with new data (bounded by its bid limit), and a run that finds none.
    pub const TRAINING_SECONDS: f64 = 60.0;
    pub const TRAINER_IDLE_SECONDS: f64 = 1.0;
    /// Log bytes per invocation: Lambda's START, END and REPORT lines; the processor adds its
    /// one line per batch.
    pub const LOG_BYTES_PER_INVOCATION: f64 = 350.0;
    pub const PROCESSOR_LOG_BYTES_PER_BATCH: f64 = 250.0;
    /// Raw JSON gzipped by Firehose, and as Parquet, per byte of JSON.
    pub const GZIP_RATIO: f64 = 0.15;
    pub const PARQUET_RATIO: f64 = 0.10;
    /// DynamoDB's per-item overhead in storage.
    pub const ITEM_STORAGE_OVERHEAD_BYTES: f64 = 100.0;
    /// KMS requests an hour per caller of the data key (data keys are cached about five
    /// minutes by Kinesis, DynamoDB, S3 bucket keys, Firehose and the logs).
    pub const KMS_REQUESTS_PER_CALLER_HOUR: f64 = 12.0;
    /// X-Ray's default sampling: the first request each second, and 5% of the rest.
    pub fn traces_per_second(requests_per_second: f64) -> f64 {
        requests_per_second.min(1.0) + 0.05 * (requests_per_second - 1.0).max(0.0)
    }

    /// The assumptions in words, for the report.
    pub const STATED: [&str; 7] = [
        "ingestion request: 15 ms + 0.05 ms per event; processor batch: 60 ms + 0.6 ms per event + 10 ms per 100 aggregates",
        "compactor: 2 s a run with nothing to do, 20 MB/s of raw JSON otherwise; trainer: 60 s an hour with new data",
        "logs: 350 bytes per invocation, 250 more per processor batch; X-Ray samples 1 request/s + 5% of the rest",
        "raw JSON gzips to 15% of its size, Parquet to 10%; the lake's storage is one month's data",
        "every event of a transaction reaches the processor in a batch of its own (the costlier case)",
        "not priced: report and prediction requests, Athena queries, data transfer out, free tiers",
        "not priced: Firehose's JQ processing hours (dynamic partitioning), metered by AWS per hour of JQ time",
    ];
}

/// How the join state and aggregates tables are billed: the stack's `StateCapacity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capacity {
    /// Per request unit: nothing idle, any spike.
    OnDemand,
    /// Per unit-hour, auto scaled to keep 70% of it in use.
    Provisioned,
}

/// One line of the bill.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub service: &'static str,
    pub item: &'static str,
    /// The month's quantity, in `unit`s.
    pub quantity: f64,
    pub unit: &'static str,
    pub usd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub region: String,
    pub prices_as_of: String,
    pub events_per_second: f64,
    pub batch_size: f64,
    pub campaigns: f64,
    pub shards: f64,
    pub capacity: Capacity,
    pub events_per_month: f64,
    pub per_event: PerEvent,
    pub lines: Vec<Line>,
    pub total_usd: f64,
    /// The total over the month's events, per million (none without traffic).
    pub usd_per_million_events: Option<f64>,
    /// The same stack with no traffic at all.
    pub idle_usd: f64,
    pub assumptions: Vec<&'static str>,
}

/// AWS bills storage and data by the binary gigabyte.
const GB: f64 = 1024.0 * 1024.0 * 1024.0;
const MILLION: f64 = 1e6;

/// The month's bill of `workload` in the region of `prices`.
pub fn estimate(
    workload: &Workload,
    sizes: &Sizes,
    prices: &Prices,
    architecture: Architecture,
    capacity: Capacity,
) -> Estimate {
    let lines = bill(workload, sizes, prices, architecture, capacity);
    let idle = Workload {
        events_per_second: 0.0,
        ..*workload
    };
    let total_usd: f64 = lines.iter().map(|l| l.usd).sum();
    let idle_usd = bill(&idle, sizes, prices, architecture, capacity)
        .iter()
        .map(|l| l.usd)
        .sum();
    let events_per_month = workload.events_per_second * SECONDS_PER_MONTH;
    Estimate {
        region: prices.region.clone(),
        prices_as_of: prices.as_of.clone(),
        events_per_second: workload.events_per_second,
        batch_size: workload.batch_size,
        campaigns: workload.campaigns,
        shards: workload.shards,
        capacity,
        events_per_month,
        per_event: per_event(workload, sizes),
        lines,
        total_usd,
        usd_per_million_events: (events_per_month > 0.0)
            .then(|| total_usd / events_per_month * MILLION),
        idle_usd,
        assumptions: assumed::STATED.to_vec(),
    }
}

fn bill(
    workload: &Workload,
    sizes: &Sizes,
    prices: &Prices,
    architecture: Architecture,
    capacity: Capacity,
) -> Vec<Line> {
    let events = workload.events_per_second * SECONDS_PER_MONTH;
    let traffic = events > 0.0;
    let units = per_event(workload, sizes);
    let gb_second = match architecture {
        Architecture::X86_64 => prices.lambda.gb_second_x86_64,
        Architecture::Arm64 => prices.lambda.gb_second_arm64,
    };
    let mut lines = Vec::new();
    let mut line = |service, item, quantity: f64, unit, usd: f64| {
        lines.push(Line {
            service,
            item,
            quantity,
            unit,
            usd,
        });
    };

    // Ingestion: API Gateway and the ingest function, one request per batch.
    let requests = events * units.api_requests;
    line(
        "API Gateway",
        "REST API requests",
        requests,
        "requests",
        prices
            .api_gateway
            .rest_requests_per_million
            .cost(requests / MILLION),
    );
    let ingest_gb_s = requests
        * billed_seconds(assumed::ingest_ms(workload.batch_size))
        * stack::INGEST_MEMORY_MB
        / 1024.0;

    // Processing: a processor invocation per batch a shard gathers.
    let b = workload.processor_batch(sizes);
    let batches = if traffic { events / b } else { 0.0 };
    let processor_gb_s = batches
        * billed_seconds(assumed::processor_ms(b, workload.aggregates_in(b)))
        * stack::PROCESSOR_MEMORY_MB
        / 1024.0;

    // Scheduled: the compactor every 15 minutes, the trainer hourly.
    let raw_json_bytes =
        events * (sizes.mean(&sizes.record_bytes) + sizes.mean(&sizes.joined_row_bytes));
    let compactor_seconds = stack::COMPACTOR_RUNS * assumed::COMPACTOR_IDLE_SECONDS
        + raw_json_bytes / assumed::COMPACTED_BYTES_PER_SECOND;
    let trainer_seconds = stack::TRAINER_RUNS
        * if traffic {
            assumed::TRAINING_SECONDS
        } else {
            assumed::TRAINER_IDLE_SECONDS
        };
    let scheduled_gb_s = compactor_seconds * stack::COMPACTOR_MEMORY_MB / 1024.0
        + trainer_seconds * stack::TRAINER_MEMORY_MB / 1024.0;
    let invocations = requests + batches + stack::COMPACTOR_RUNS + stack::TRAINER_RUNS;
    line(
        "Lambda",
        "invocations (all functions)",
        invocations,
        "requests",
        invocations / MILLION * prices.lambda.requests_per_million,
    );
    line(
        "Lambda",
        "ingest compute",
        ingest_gb_s,
        "GB-s",
        ingest_gb_s * gb_second,
    );
    line(
        "Lambda",
        "processor compute",
        processor_gb_s,
        "GB-s",
        processor_gb_s * gb_second,
    );
    line(
        "Lambda",
        "compactor and trainer compute",
        scheduled_gb_s,
        "GB-s",
        scheduled_gb_s * gb_second,
    );

    // The event stream.
    let shard_hours = workload.shards * usage::HOURS_PER_MONTH;
    line(
        "Kinesis",
        "shard-hours",
        shard_hours,
        "shard-hours",
        shard_hours * prices.kinesis.shard_hour,
    );
    let put_units = events * units.put_payload_units;
    line(
        "Kinesis",
        "PUT payload units",
        put_units,
        "25 KB units",
        put_units / MILLION * prices.kinesis.put_payload_units_per_million,
    );

    // State and aggregates.
    let writes = events * units.write_request_units;
    let reads = events * units.read_request_units;
    match capacity {
        Capacity::OnDemand => {
            line(
                "DynamoDB",
                "write request units",
                writes,
                "WRU",
                writes / MILLION * prices.dynamodb.write_request_units_per_million,
            );
            line(
                "DynamoDB",
                "read request units",
                reads,
                "RRU",
                reads / MILLION * prices.dynamodb.read_request_units_per_million,
            );
        }
        Capacity::Provisioned => {
            // Auto scaling keeps each table's units a second at the target use, never below
            // its minimum.
            let unit_hours = |units: f64, of_aggregates: f64| {
                let per_second = |u: f64| {
                    (u / SECONDS_PER_MONTH / stack::TARGET_UTILISATION)
                        .max(stack::MIN_CAPACITY_UNITS)
                };
                (per_second(units - of_aggregates) + per_second(of_aggregates))
                    * usage::HOURS_PER_MONTH
            };
            let (write_hours, read_hours) = (
                unit_hours(writes, events * units.aggregate_write_units),
                unit_hours(reads, events * units.aggregate_read_units),
            );
            line(
                "DynamoDB",
                "provisioned write capacity (at 70% use)",
                write_hours,
                "WCU-hours",
                write_hours * prices.dynamodb.write_capacity_unit_hour,
            );
            line(
                "DynamoDB",
                "provisioned read capacity (at 70% use)",
                read_hours,
                "RCU-hours",
                read_hours * prices.dynamodb.read_capacity_unit_hour,
            );
        }
    }
    let state_gb = workload.events_per_second
        * sizes.share[0]
        * 86_400.0
        * stack::STATE_RETENTION_DAYS
        * (sizes.mean(&sizes.state_item_bytes) + assumed::ITEM_STORAGE_OVERHEAD_BYTES)
        / GB;
    line(
        "DynamoDB",
        "state storage (7 days of transactions)",
        state_gb,
        "GB-month",
        state_gb * prices.dynamodb.storage_gb_month,
    );

    // The lake's delivery.
    let billed_gb =
        events * (units.stream_delivery_billed_bytes + units.processor_delivery_billed_bytes) / GB;
    line(
        "Firehose",
        "ingestion (records in 5 KB steps)",
        billed_gb,
        "GB",
        billed_gb * prices.firehose.ingested_gb,
    );
    let partitioned_gb = raw_json_bytes / GB;
    line(
        "Firehose",
        "dynamic partitioning",
        partitioned_gb,
        "GB",
        partitioned_gb * prices.firehose.dynamic_partitioning_gb,
    );
    // Each stream delivers an object per partition (an hour) each buffer interval, or sooner
    // when the buffer fills.
    let streams_active = if traffic {
        stack::DELIVERY_STREAMS
    } else {
        0.0
    };
    let objects = (streams_active * SECONDS_PER_MONTH / stack::BUFFER_SECONDS)
        .max(raw_json_bytes / (stack::BUFFER_MB * 1e6));
    line(
        "Firehose",
        "objects delivered (dynamic partitioning)",
        objects,
        "objects",
        objects / 1000.0 * prices.firehose.dynamic_partitioning_objects_per_thousand,
    );

    // The lake: raw objects written by Firehose and read once by the compactor, Parquet
    // written hourly per dataset; the listings of every scheduled run.
    let parquet_writes = if traffic {
        stack::DELIVERY_STREAMS * usage::HOURS_PER_MONTH
    } else {
        0.0
    };
    let listings = (stack::COMPACTOR_RUNS + stack::TRAINER_RUNS) * stack::DELIVERY_STREAMS;
    let s3_writes = objects + parquet_writes + listings;
    line(
        "S3",
        "PUT and LIST requests",
        s3_writes,
        "requests",
        s3_writes / 1000.0 * prices.s3.put_copy_post_list_per_thousand,
    );
    line(
        "S3",
        "GET requests",
        objects,
        "requests",
        objects / 1000.0 * prices.s3.get_per_thousand,
    );
    let lake_gb = raw_json_bytes * (assumed::GZIP_RATIO + assumed::PARQUET_RATIO) / GB;
    line(
        "S3",
        "storage (a month of raw and Parquet)",
        lake_gb,
        "GB-month",
        lake_gb * prices.s3.storage_gb_month,
    );

    // Operations.
    let log_gb = (invocations * assumed::LOG_BYTES_PER_INVOCATION
        + batches * assumed::PROCESSOR_LOG_BYTES_PER_BATCH)
        / GB;
    line(
        "CloudWatch",
        "logs ingested",
        log_gb,
        "GB",
        log_gb * prices.cloudwatch.logs_ingested_gb,
    );
    let log_stored = log_gb * stack::LOG_RETENTION_DAYS / 30.0;
    line(
        "CloudWatch",
        "logs stored",
        log_stored,
        "GB-month",
        log_stored * prices.cloudwatch.logs_stored_gb_month,
    );
    line(
        "CloudWatch",
        "alarms",
        stack::ALARMS,
        "alarms",
        stack::ALARMS * prices.cloudwatch.alarm_month,
    );
    line(
        "CloudWatch",
        "dashboard",
        stack::DASHBOARDS,
        "dashboards",
        stack::DASHBOARDS * prices.cloudwatch.dashboard_month,
    );
    // Ingestion is traced from API Gateway through its function; the processor on its own.
    let traces = SECONDS_PER_MONTH
        * (assumed::traces_per_second(requests / SECONDS_PER_MONTH)
            + assumed::traces_per_second(batches / SECONDS_PER_MONTH));
    line(
        "X-Ray",
        "traces recorded",
        traces,
        "traces",
        traces / MILLION * prices.xray.traces_recorded_per_million,
    );
    line("KMS", "data key", 1.0, "keys", prices.kms.key_month);
    let callers = workload.shards * 3.0 + 2.0 + stack::DELIVERY_STREAMS + stack::FUNCTIONS;
    let kms_requests = callers * assumed::KMS_REQUESTS_PER_CALLER_HOUR * usage::HOURS_PER_MONTH;
    line(
        "KMS",
        "requests",
        kms_requests,
        "requests",
        kms_requests / 10_000.0 * prices.kms.requests_per_10k,
    );
    lines
}

/// Lambda bills duration by the millisecond.
fn billed_seconds(ms: f64) -> f64 {
    ms.ceil() / 1000.0
}
