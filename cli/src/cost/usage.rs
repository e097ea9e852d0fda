//! Units per event: what the code's own calls consume, per billed dimension, for steady traffic.
//!
//! Every figure here follows a call the platform makes (the ingestion function's `PutRecords`,
//! the processor's state read, its transactions and Firehose batches), with the rounding
//! rules AWS bills by. tests/tests/it/cost.rs runs the real handlers against moto with a counting
//! layer on the SDK clients and checks what they consumed against [`per_event`].

use sdp_core::join::Transaction;

use super::sizes::Sizes;

/// The stack's settings that cost depends on, as templates/ sets them (checked against the
/// rendered template by tests/tests/it/cost.rs).
pub mod stack {
    /// `MemorySize` of the ingest and processor functions, in MB.
    pub const INGEST_MEMORY_MB: f64 = 256.0;
    pub const PROCESSOR_MEMORY_MB: f64 = 512.0;
    /// The compactor's (`CompactorMemory`'s default) and the trainer's memory, in MB.
    pub const COMPACTOR_MEMORY_MB: f64 = 2048.0;
    pub const TRAINER_MEMORY_MB: f64 = 2048.0;
    /// Runs a month of the compactor (`rate(15 minutes)`) and the trainer (`rate(1 hour)`).
    pub const COMPACTOR_RUNS: f64 = 4.0 * super::HOURS_PER_MONTH;
    pub const TRAINER_RUNS: f64 = super::HOURS_PER_MONTH;
    /// The processor's event source mapping: `BatchSize` and `MaximumBatchingWindowInSeconds`.
    pub const PROCESSOR_BATCH_RECORDS: f64 = 500.0;
    pub const BATCHING_WINDOW_SECONDS: f64 = 1.0;
    /// Delivery streams: `bcns` read from the event stream, and the processor's three.
    pub const DELIVERY_STREAMS: f64 = 4.0;
    pub const PROCESSOR_DATASETS: f64 = 3.0;
    /// `BufInterval` (seconds) and `BufSize` (MB) defaults.
    pub const BUFFER_SECONDS: f64 = 60.0;
    pub const BUFFER_MB: f64 = 50.0;
    /// `RawRetentionDays`, `LogRetentionDays` defaults, and the join state's retention (7 days).
    pub const RAW_RETENTION_DAYS: f64 = 30.0;
    pub const LOG_RETENTION_DAYS: f64 = 30.0;
    pub const STATE_RETENTION_DAYS: f64 = 7.0;
    /// CloudWatch alarms and dashboards the template creates.
    pub const ALARMS: f64 = 8.0;
    pub const DASHBOARDS: f64 = 1.0;
    /// Functions with a log group and a KMS-encrypted environment.
    pub const FUNCTIONS: f64 = 6.0;
    /// With `StateCapacity=PROVISIONED`: the two tables' auto scaling tracks this share of use,
    /// from this many units of each kind per table.
    pub const TARGET_UTILISATION: f64 = 0.70;
    pub const MIN_CAPACITY_UNITS: f64 = 5.0;
    pub const TABLES: f64 = 2.0;
}

/// AWS's limits and billing steps that the units follow.
pub mod aws {
    /// A shard takes 1,000 records or 1 MiB a second.
    pub const SHARD_RECORDS_PER_SECOND: f64 = 1000.0;
    pub const SHARD_BYTES_PER_SECOND: f64 = 1024.0 * 1024.0;
    /// Kinesis bills PUTs in 25 KB payload units (data and partition key).
    pub const PUT_PAYLOAD_UNIT_BYTES: f64 = 25.0 * 1024.0;
    /// Firehose bills every record rounded up to 5 KB, from the stream and by direct PUT alike.
    pub const FIREHOSE_STEP_BYTES: f64 = 5.0 * 1024.0;
    /// DynamoDB: a write unit per 1 KB of item (two in a transaction), a read unit per 4 KB
    /// (strongly consistent; a key not found costs one too).
    pub const WRITE_UNIT_BYTES: f64 = 1024.0;
    pub const READ_UNIT_BYTES: f64 = 4096.0;
    /// Items per `TransactWriteItems` (sdp-aws fills each with state puts and one update per
    /// aggregate they touch).
    pub const TRANSACTION_ITEMS: f64 = 100.0;
    /// Rows the processor packs into one Firehose record (sdp-aws `MAX_ROWS_PER_RECORD`).
    pub const ROWS_PER_RECORD: f64 = 500.0;
    /// Lambda takes at most 6 MB of payload an invocation; a Kinesis record in it carries about
    /// this much besides its data (ids, sequence number, partition key, ARNs).
    pub const INVOCATION_PAYLOAD_BYTES: f64 = 6.0 * 1024.0 * 1024.0;
    pub const RECORD_ENVELOPE_BYTES: f64 = 400.0;
}

pub const HOURS_PER_MONTH: f64 = 730.0;
pub const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3600.0;

/// The traffic to price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    pub events_per_second: f64,
    /// Events per ingestion request: 1 on the single-event routes, up to 500 on `POST /events`.
    pub batch_size: f64,
    /// Campaigns with traffic: a processor batch adds to one aggregate per campaign it touches.
    pub campaigns: f64,
    /// Shards of the event stream: at least as many as the traffic needs.
    pub shards: f64,
}

impl Workload {
    /// The fewest shards that carry `events_per_second` in requests of `batch_size` (at least
    /// one, as the stack has): within a shard's bytes and records a second.
    pub fn shards_needed(events_per_second: f64, batch_size: f64, sizes: &Sizes) -> f64 {
        let bytes = events_per_second * (sizes.mean(&sizes.record_bytes) + 1.0);
        let mut shards = (bytes / aws::SHARD_BYTES_PER_SECOND).ceil().max(1.0);
        let records = |shards: f64| {
            events_per_second / batch_size * records_per_request(batch_size, shards) / shards
        };
        while records(shards) > aws::SHARD_RECORDS_PER_SECOND {
            shards += 1.0;
        }
        shards
    }

    /// Records an ingestion request writes: one per shard its events reach (sdp-aws packs a
    /// request's events per shard), the expected number of shards `batch_size` events hit.
    pub fn records_per_request(&self) -> f64 {
        records_per_request(self.batch_size, self.shards)
    }

    /// Events per stream record.
    pub fn events_per_record(&self) -> f64 {
        self.batch_size / self.records_per_request()
    }

    /// Events in one processor invocation: the records a shard gathers in the batching window,
    /// at most the mapping's batch size and what fits in an invocation's payload, each with its
    /// packed events.
    pub fn processor_batch(&self, sizes: &Sizes) -> f64 {
        let records_per_second = self.events_per_second / self.events_per_record() / self.shards;
        // In the invocation a record's data is base64, in an envelope of its own.
        let record_payload =
            self.events_per_record() * (sizes.mean(&sizes.record_bytes) + 1.0) * 4.0 / 3.0
                + aws::RECORD_ENVELOPE_BYTES;
        let fits = (aws::INVOCATION_PAYLOAD_BYTES / record_payload).floor();
        ((records_per_second * stack::BATCHING_WINDOW_SECONDS)
            .min(stack::PROCESSOR_BATCH_RECORDS)
            .min(fits)
            .max(1.0)
            * self.events_per_record())
        .round()
    }

    /// The aggregates a processor batch of `events` touches: the expected number of distinct
    /// campaigns among them, each in one window.
    pub fn aggregates_in(&self, events: f64) -> f64 {
        let c = self.campaigns.max(1.0);
        c * (1.0 - (1.0 - 1.0 / c).powf(events))
    }

    /// Aggregate updates a processor batch of `events` writes. sdp-aws orders a batch's state
    /// changes by the aggregate they add to and fills each transaction with up to 100 items,
    /// state puts and one update per aggregate they touch: so the changes of one aggregate run
    /// together, and an aggregate costs an update in each transaction its run reaches.
    pub fn aggregate_writes(&self, events: f64) -> f64 {
        let changes = events.round().max(0.0) as usize;
        let aggregates = (self.aggregates_in(events).round() as usize).clamp(1, changes.max(1));
        let limit = aws::TRANSACTION_ITEMS as usize;
        let (mut writes, mut puts, mut touched) = (0, 0, 0);
        for run in 0..aggregates {
            // Runs as even as the batch allows.
            let mut left = changes / aggregates + usize::from(run < changes % aggregates);
            let mut joined = false;
            while left > 0 {
                let new_key = usize::from(!joined);
                if puts + 1 + touched + new_key > limit {
                    writes += touched;
                    (puts, touched, joined) = (0, 0, false);
                    continue;
                }
                touched += new_key;
                joined = true;
                puts += 1;
                left -= 1;
            }
        }
        (writes + touched) as f64
    }
}

/// The expected number of `shards` that `events` spread evenly at random reach (at least one).
fn records_per_request(events: f64, shards: f64) -> f64 {
    let s = shards.max(1.0);
    (s * (1.0 - (1.0 - 1.0 / s).powf(events))).max(1.0)
}

/// The units one event consumes, averaged over the traffic's mix of bids, impressions and clicks.
/// Each event of a transaction is taken to reach the processor in a batch of its own (an
/// impression comes seconds after its bid), so each reads and writes its transaction's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PerEvent {
    pub api_requests: f64,
    pub stream_records: f64,
    pub put_payload_units: f64,
    pub read_request_units: f64,
    pub write_request_units: f64,
    /// The part of the read and write units that falls on the aggregates table (the rest is
    /// the join state's): provisioned capacity is per table.
    pub aggregate_read_units: f64,
    pub aggregate_write_units: f64,
    /// Bytes Firehose bills for `bcns`, which it reads from the event stream.
    pub stream_delivery_billed_bytes: f64,
    /// Bytes Firehose bills for the rows the processor lands (packed records).
    pub processor_delivery_billed_bytes: f64,
}

pub fn per_event(workload: &Workload, sizes: &Sizes) -> PerEvent {
    let b = workload.processor_batch(sizes);
    let aggregates = workload.aggregates_in(b);
    // A stream record's data: its events' JSON, one per line.
    let per_record = workload.events_per_record();
    let record_bytes = per_record * (sizes.mean(&sizes.record_bytes) + 1.0) - 1.0;
    let weighted = |f: &dyn Fn(usize) -> f64| (0..3).map(|i| sizes.share[i] * f(i)).sum::<f64>();
    // Per processor batch, each dataset's rows go out packed, each record rounded to 5 KB.
    let packed = |rows: f64, row_bytes: f64| {
        if rows <= 0.0 {
            return 0.0;
        }
        let records = (rows / aws::ROWS_PER_RECORD).ceil();
        records
            * steps(rows * row_bytes / records, aws::FIREHOSE_STEP_BYTES)
            * aws::FIREHOSE_STEP_BYTES
    };
    let joined_rows: f64 = (1..3)
        .map(|i| {
            let rows = b * sizes.share[i];
            let row_bytes = sizes.joined_row_bytes[i];
            if row_bytes > 0.0 {
                packed(rows, row_bytes)
            } else {
                0.0
            }
        })
        .sum();
    PerEvent {
        api_requests: 1.0 / workload.batch_size,
        stream_records: 1.0 / workload.events_per_record(),
        // A record holds its events' JSON, one per line, and the first one's partition key.
        put_payload_units: steps(
            record_bytes + sizes.partition_key_bytes,
            aws::PUT_PAYLOAD_UNIT_BYTES,
        ) / workload.events_per_record(),
        // The state is read once, before the commit (the rows to land are derived from what
        // was committed); then each aggregate's totals for its snapshot.
        read_request_units: 1.0 + aggregates / b,
        // A state put in a transaction, two units per KB; the batch's aggregate updates likewise.
        write_request_units: weighted(&|i| {
            2.0 * steps(sizes.state_item_bytes[i], aws::WRITE_UNIT_BYTES)
        }) + 2.0 * workload.aggregate_writes(b) / b,
        // Firehose reads each stream record for `bcns`, rounded up to 5 KB.
        aggregate_read_units: aggregates / b,
        aggregate_write_units: 2.0 * workload.aggregate_writes(b) / b,
        stream_delivery_billed_bytes: steps(record_bytes, aws::FIREHOSE_STEP_BYTES)
            * aws::FIREHOSE_STEP_BYTES
            / workload.events_per_record(),
        processor_delivery_billed_bytes: (joined_rows
            + packed(aggregates, sizes.aggregate_row_bytes))
            / b,
    }
}

/// How many `unit`s `bytes` is billed as: at least one.
pub fn steps(bytes: f64, unit: f64) -> f64 {
    (bytes / unit).ceil().max(1.0)
}

/// DynamoDB's size of an attribute: its name's bytes and its value's. A string weighs its UTF-8
/// bytes; a number one byte per two significant digits, and one more.
pub fn string_attribute(name: &str, value: &str) -> usize {
    name.len() + value.len()
}

pub fn number_attribute(name: &str, value: &str) -> usize {
    let digits = value
        .trim_start_matches('-')
        .replace('.', "")
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len();
    name.len() + digits.div_ceil(2) + 1
}

/// The size of a transaction's state item as sdp-aws stores it: `tx_id`, `version`,
/// `expires_at` and the state's JSON.
pub fn state_item_bytes(state: &Transaction) -> usize {
    let json = serde_json::to_string(state).unwrap_or_default();
    string_attribute("tx_id", &state.tx_id)
        + number_attribute("version", &state.version.to_string())
        + number_attribute("expires_at", &state.expires_at.to_string())
        + string_attribute("state", &json)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn workload(events_per_second: f64, campaigns: f64) -> Workload {
        Workload {
            events_per_second,
            batch_size: 100.0,
            campaigns,
            shards: 1.0,
        }
    }

    #[test]
    fn numbers_weigh_a_byte_per_two_significant_digits_and_one_more() {
        assert_eq!(number_attribute("n", "7"), 1 + 1 + 1);
        // Trailing zeros are trimmed: four significant digits.
        assert_eq!(number_attribute("n", "1764000000"), 1 + 2 + 1);
        assert_eq!(number_attribute("n", "123456"), 1 + 3 + 1);
        assert_eq!(string_attribute("tx_id", "abc"), 8);
    }

    #[test]
    fn a_processor_batch_is_what_a_shard_gathers_in_the_window_up_to_the_batch_size() {
        let sizes = Sizes::of_load_traffic().unwrap();
        // Requests of 100 events, one record each on one shard.
        assert_eq!(workload(50.0, 8.0).processor_batch(&sizes), 100.0);
        assert_eq!(workload(1000.0, 8.0).processor_batch(&sizes), 1000.0);
        // 500 records of 100 events would be about 14 MB of payload; 6 MB holds about 230.
        let capped = workload(100_000.0, 8.0).processor_batch(&sizes);
        assert!((20_000.0..25_000.0).contains(&capped), "{capped}");
        let single = Workload {
            batch_size: 1.0,
            ..workload(5000.0, 8.0)
        };
        assert_eq!(single.processor_batch(&sizes), 500.0);
        // Four shards: a request of 100 events reaches all four.
        let four = Workload {
            shards: 4.0,
            ..workload(1000.0, 8.0)
        };
        assert!((four.records_per_request() - 4.0).abs() < 1e-3);
    }

    #[test]
    fn transactions_hold_a_hundred_items_with_their_aggregates() {
        let few = workload(1000.0, 8.0);
        // Runs of 62 or 63 changes per aggregate: each transaction takes 98 puts and the 2
        // aggregates they reach; 6 transactions, 8 runs, 5 of them split across two.
        assert_eq!(few.aggregate_writes(500.0), 13.0);
        // 100 campaigns, 5 changes each: about one update per campaign.
        let many = workload(1000.0, 100.0);
        let writes = many.aggregate_writes(500.0);
        assert!((100.0..=106.0).contains(&writes), "{writes}");
        let one = workload(1000.0, 1.0);
        assert!((one.aggregate_writes(99.0) - 1.0).abs() < 1e-9);
        assert!((one.aggregate_writes(100.0) - 2.0).abs() < 1e-9);
    }
}
