//! In-memory adapters of the ports, for unit tests of the use cases: a state store, an object
//! store with S3's conditional writes, and a lake sink. Each can be told to fail chosen calls, so
//! a test can stop a use case at any step and check what a rerun makes of it. Every future they
//! return is ready at once: [`ready`] runs one without an async runtime.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;

use crate::events::{Bid, Event, EventBody};
use crate::join::{AggregateKey, Counts, Transaction};
use crate::landing::LandedRow;
use crate::ports::{
    AggregateReader, CommitOutcome, Fetched, LakeSink, Listed, Object, ObjectStore, Precondition,
    StateChange, StateStore, StoreError, Written,
};
use crate::reports::WindowCounts;

/// Runs a future that never waits on I/O (every adapter here is always ready).
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// The time of the events of [`scenario`]: 2025-11-22T03:00:00Z.
pub const T0: i64 = 1_763_780_400_000;

/// A bid of campaign 5 with transaction id `tx`, at [`T0`].
pub fn bid(tx: &str) -> Event {
    event(
        tx,
        EventBody::Bid(Bid {
            campaign_item_id: 5,
            app_uid: "u".into(),
            creative_id: None,
            creative_category: None,
            domain: None,
            win_price: Some(3),
        }),
    )
}

fn event(tx: &str, body: EventBody) -> Event {
    Event {
        tx_id: tx.into(),
        ts: T0,
        received_at: T0,
        body,
    }
}

/// `n` bids (`tx-0`, `tx-1`, …); every other one won, every fourth clicked: a batch for the tests
/// of the use cases that process one.
pub fn scenario(n: usize) -> Vec<Event> {
    let mut events = Vec::new();
    for i in 0..n {
        let tx = format!("tx-{i}");
        events.push(bid(&tx));
        if i % 2 == 0 {
            events.push(event(&tx, EventBody::Impression { win_price: 9 }));
        }
        if i % 4 == 0 {
            events.push(event(&tx, EventBody::Click));
        }
    }
    events
}

/// The failure an injected fault gives: transient, as a throttled or timed-out call would be.
fn injected(what: &str) -> StoreError {
    StoreError::Transient {
        message: format!("injected fault: {what}"),
        source: None,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding it has already failed; its data is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Versioned join state and summed aggregates, as DynamoDB keeps them; optionally a conflict on
/// the first commit of chosen transactions, or a refusal of every commit of others.
#[derive(Default)]
pub struct MemoryState {
    states: Mutex<HashMap<String, Transaction>>,
    aggregates: Mutex<BTreeMap<AggregateKey, Counts>>,
    conflict_once: Mutex<Vec<String>>,
    rejects: Mutex<Vec<String>>,
}

impl MemoryState {
    /// Every commit of `tx_id` is refused for good (as DynamoDB refuses an item too large).
    pub fn reject(&self, tx_id: &str) {
        lock(&self.rejects).push(tx_id.to_owned());
    }

    /// The next commit of `tx_id` reports a conflict (as if another writer got there first).
    pub fn conflict_once(&self, tx_id: &str) {
        lock(&self.conflict_once).push(tx_id.to_owned());
    }

    /// Every aggregate, by key.
    pub fn aggregates(&self) -> BTreeMap<AggregateKey, Counts> {
        lock(&self.aggregates).clone()
    }

    /// The sum of every aggregate.
    pub fn totals(&self) -> Counts {
        let mut total = Counts::default();
        for counts in lock(&self.aggregates).values() {
            total.add(*counts);
        }
        total
    }
}

impl StateStore for MemoryState {
    async fn load(&self, tx_ids: &[String]) -> Result<HashMap<String, Transaction>, StoreError> {
        let states = lock(&self.states);
        Ok(tx_ids
            .iter()
            .filter_map(|id| states.get(id).map(|s| (id.clone(), s.clone())))
            .collect())
    }

    async fn commit(&self, changes: Vec<StateChange>) -> Result<CommitOutcome, StoreError> {
        let mut outcome = CommitOutcome::default();
        let mut states = lock(&self.states);
        let mut aggregates = lock(&self.aggregates);
        let mut once = lock(&self.conflict_once);
        let rejects = lock(&self.rejects);
        for change in changes {
            let id = change.state.tx_id.clone();
            if rejects.contains(&id) {
                outcome.rejected.push((
                    id,
                    "ValidationError: Item size has exceeded the maximum allowed size".into(),
                ));
                continue;
            }
            let stored_version = states.get(&id).map_or(0, |s| s.version);
            if once.contains(&id) || stored_version != change.read_version {
                once.retain(|x| x != &id);
                outcome.conflicts.push(id);
                continue;
            }
            for (key, counts) in change.increments {
                aggregates.entry(key).or_default().add(counts);
            }
            states.insert(id, change.state);
        }
        Ok(outcome)
    }
}

impl AggregateReader for MemoryState {
    async fn campaign(
        &self,
        campaign_item_id: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        Ok(lock(&self.aggregates)
            .iter()
            .filter(|(key, _)| {
                key.campaign_item_id == campaign_item_id && (from..=to).contains(&key.period)
            })
            .map(|(key, counts)| WindowCounts {
                period: key.period,
                counts: *counts,
            })
            .collect())
    }
}

/// A batch as delivered: its events and its rows.
type Delivery = (Vec<Event>, Vec<LandedRow>);

/// A lake sink that keeps what it is given, by batch (a redelivered batch replaces its own, as
/// `sdp local`'s files do); optionally failing its next deliveries.
#[derive(Default)]
pub struct MemoryLake {
    batches: Mutex<BTreeMap<String, Delivery>>,
    failures_left: Mutex<usize>,
}

impl MemoryLake {
    /// The next `n` deliveries fail (transiently) and land nothing.
    pub fn fail_next(&self, n: usize) {
        *lock(&self.failures_left) = n;
    }

    /// The rows landed, batch after batch.
    pub fn rows(&self) -> Vec<LandedRow> {
        lock(&self.batches)
            .values()
            .flat_map(|(_, rows)| rows.iter().cloned())
            .collect()
    }

    /// The events landed, batch after batch.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.batches)
            .values()
            .flat_map(|(events, _)| events.iter().cloned())
            .collect()
    }
}

impl LakeSink for MemoryLake {
    async fn deliver(
        &self,
        batch: &str,
        events: &[Event],
        rows: &[LandedRow],
    ) -> Result<(), StoreError> {
        let mut failures_left = lock(&self.failures_left);
        if *failures_left > 0 {
            *failures_left -= 1;
            return Err(injected(&format!("delivering batch {batch}")));
        }
        lock(&self.batches).insert(batch.to_owned(), (events.to_vec(), rows.to_vec()));
        Ok(())
    }
}

/// Which calls of a [`MemoryObjects`] fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Put,
    Delete,
    /// The object is gone when read, as after a concurrent writer replaced it since a listing.
    GetVanished,
}

/// A bucket in memory, with S3's semantics: a flat key space listed in key order, entity tags
/// that change with every write, `If-None-Match: *` and `If-Match` writes.
#[derive(Default)]
pub struct MemoryObjects {
    objects: Mutex<BTreeMap<String, Stored>>,
    writes: Mutex<u64>,
    faults: Mutex<Vec<(Call, String)>>,
}

#[derive(Clone)]
struct Stored {
    bytes: Vec<u8>,
    etag: String,
    last_modified_ms: i64,
}

impl MemoryObjects {
    /// The next `call` on a key containing `pattern` fails (transiently) and changes nothing.
    pub fn fail_once(&self, call: Call, pattern: &str) {
        lock(&self.faults).push((call, pattern.to_owned()));
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<String> {
        lock(&self.objects).keys().cloned().collect()
    }

    /// The bytes at `key`.
    pub fn bytes(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.objects).get(key).map(|o| o.bytes.clone())
    }

    /// Writes `bytes` at `key` as it was `last_modified_ms` (an old lock, an old object).
    pub fn insert_at(&self, key: &str, bytes: &[u8], last_modified_ms: i64) {
        let etag = self.next_etag();
        lock(&self.objects).insert(
            key.to_owned(),
            Stored {
                bytes: bytes.to_vec(),
                etag,
                last_modified_ms,
            },
        );
    }

    fn next_etag(&self) -> String {
        let mut writes = lock(&self.writes);
        *writes += 1;
        format!("\"{:032x}\"", *writes)
    }

    fn faulted(&self, call: Call, key: &str) -> bool {
        let mut faults = lock(&self.faults);
        match faults
            .iter()
            .position(|(c, pattern)| *c == call && key.contains(pattern.as_str()))
        {
            Some(at) => {
                faults.remove(at);
                true
            }
            None => false,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl ObjectStore for MemoryObjects {
    type ReadersHeld = ();

    fn location(&self) -> String {
        "memory://".to_owned()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        Ok(lock(&self.objects)
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, o)| Listed {
                key: key.clone(),
                size: o.bytes.len() as u64,
                etag: o.etag.clone(),
                last_modified_ms: o.last_modified_ms,
            })
            .collect())
    }

    async fn get(&self, key: &str, known_etag: Option<&str>) -> Result<Fetched, StoreError> {
        if self.faulted(Call::GetVanished, key) {
            return Ok(Fetched::Missing);
        }
        Ok(match lock(&self.objects).get(key) {
            None => Fetched::Missing,
            Some(o) if known_etag == Some(o.etag.as_str()) => Fetched::Unchanged,
            Some(o) => Fetched::Found(Object {
                bytes: o.bytes.clone(),
                etag: o.etag.clone(),
            }),
        })
    }

    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        _content_type: &str,
        precondition: Precondition<'_>,
    ) -> Result<Written, StoreError> {
        if self.faulted(Call::Put, key) {
            return Err(injected(&format!("PUT {key}")));
        }
        let mut objects = lock(&self.objects);
        let holds = match (precondition, objects.get(key)) {
            (Precondition::None, _) => true,
            (Precondition::Absent, existing) => existing.is_none(),
            (Precondition::Matches(etag), Some(o)) => o.etag == etag,
            (Precondition::Matches(_), None) => false,
        };
        if !holds {
            return Ok(Written::Conflict);
        }
        let etag = self.next_etag();
        objects.insert(
            key.to_owned(),
            Stored {
                bytes,
                etag: etag.clone(),
                last_modified_ms: now_ms(),
            },
        );
        Ok(Written::Done(etag))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if self.faulted(Call::Delete, key) {
            return Err(injected(&format!("DELETE {key}")));
        }
        lock(&self.objects).remove(key);
        Ok(())
    }

    async fn hold_readers(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
