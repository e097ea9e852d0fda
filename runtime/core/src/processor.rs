//! Processing a batch of stored events: load the state of their transactions, apply the join,
//! commit state and increments together, and retry transactions whose state changed meanwhile.
//! Shared by the `processor` Lambda and `sdp local`; the store decides how commits are chunked.

use std::collections::BTreeMap;

use crate::events::Event;
use crate::join::{self, AggregateKey, Counts, JoinConfig, JoinedEvent};
use crate::ports::{StateChange, StateStore, StoreError};

/// How often a transaction whose state changed under us is reloaded before giving up. With one
/// writer per `tx_id` (Kinesis orders a partition key) conflicts only follow an earlier failed
/// attempt, so a few rounds are plenty.
const MAX_ROUNDS: usize = 5;

/// What a processed batch changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchResult {
    /// The increments committed, summed per aggregate.
    pub increments: BTreeMap<AggregateKey, Counts>,
    /// Impressions and clicks that joined in this batch, for the lake.
    pub joined: Vec<JoinedEvent>,
    /// Events that changed nothing (already seen).
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("storing the join state failed")]
    Store(#[from] StoreError),
    /// The batch is committed but its lake rows are not delivered: retrying the batch lands them
    /// (and counts nothing twice).
    #[error("landing the committed batch in the lake failed")]
    Landing(#[source] StoreError),
    #[error("the state of {} transaction(s) kept changing during {MAX_ROUNDS} attempts, e.g. `{}`", .0.len(), .0.first().map(String::as_str).unwrap_or(""))]
    Contention(Vec<String>),
}

/// Processes `events` (in stream order) against `store`. Safe to call again with the same
/// events: what was committed before is recognised and not counted twice.
pub async fn process_batch<S: StateStore>(
    store: &S,
    config: &JoinConfig,
    events: Vec<Event>,
) -> Result<BatchResult, ProcessError> {
    let mut pending = join::by_transaction(events);
    let mut result = BatchResult::default();
    for _ in 0..MAX_ROUNDS {
        if pending.is_empty() {
            return Ok(result);
        }
        let tx_ids: Vec<String> = pending.keys().cloned().collect();
        let mut stored = store.load(&tx_ids).await?;
        let mut changes = Vec::new();
        let mut outcomes = BTreeMap::new();
        for (tx_id, events) in &pending {
            let transition = join::apply(config, stored.remove(tx_id), events);
            result.duplicates += transition.duplicates;
            if transition.changed {
                changes.push(StateChange {
                    read_version: transition.read_version,
                    state: transition.state,
                    increments: transition
                        .increments
                        .iter()
                        .map(|(k, c)| (*k, *c))
                        .collect(),
                });
                outcomes.insert(tx_id.clone(), (transition.increments, transition.joined));
            }
        }
        let outcome = store.commit(changes).await?;
        let conflicts: std::collections::BTreeSet<String> = outcome.conflicts.into_iter().collect();
        for (tx_id, (increments, joined)) in outcomes {
            if conflicts.contains(&tx_id) {
                continue;
            }
            for (key, counts) in increments {
                result.increments.entry(key).or_default().add(counts);
            }
            result.joined.extend(joined);
        }
        // Committed and duplicate-only transactions are done; conflicts go round again.
        pending.retain(|tx_id, _| conflicts.contains(tx_id));
    }
    if pending.is_empty() {
        Ok(result)
    } else {
        Err(ProcessError::Contention(pending.into_keys().collect()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::future::Future;
    use std::sync::Mutex;

    use super::*;
    use crate::events::{Bid, EventBody};
    use crate::join::Transaction;
    use crate::ports::CommitOutcome;

    /// The in-memory store of these tests: versioned state and summed aggregates, with the
    /// option to report a conflict on the first commit of chosen transactions.
    #[derive(Default)]
    struct MemoryStore {
        states: Mutex<HashMap<String, Transaction>>,
        aggregates: Mutex<BTreeMap<AggregateKey, Counts>>,
        conflict_once: Mutex<Vec<String>>,
    }

    impl StateStore for MemoryStore {
        async fn load(
            &self,
            tx_ids: &[String],
        ) -> Result<HashMap<String, Transaction>, StoreError> {
            let states = self.states.lock().unwrap();
            Ok(tx_ids
                .iter()
                .filter_map(|id| states.get(id).map(|s| (id.clone(), s.clone())))
                .collect())
        }

        async fn commit(&self, changes: Vec<StateChange>) -> Result<CommitOutcome, StoreError> {
            let mut outcome = CommitOutcome::default();
            let mut states = self.states.lock().unwrap();
            for change in changes {
                let id = change.state.tx_id.clone();
                let mut once = self.conflict_once.lock().unwrap();
                let stored_version = states.get(&id).map_or(0, |s| s.version);
                if once.contains(&id) || stored_version != change.read_version {
                    once.retain(|x| x != &id);
                    outcome.conflicts.push(id);
                    continue;
                }
                for (key, counts) in change.increments {
                    self.aggregates
                        .lock()
                        .unwrap()
                        .entry(key)
                        .or_default()
                        .add(counts);
                }
                states.insert(id, change.state);
            }
            Ok(outcome)
        }
    }

    /// Runs a future that never waits on I/O (the memory store is always ready).
    fn run<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
        }
    }

    const T0: i64 = 1_763_780_400_000;

    fn event(tx: &str, body: EventBody) -> Event {
        Event {
            tx_id: tx.into(),
            ts: T0,
            received_at: T0,
            body,
        }
    }

    fn bid(tx: &str) -> Event {
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

    fn scenario(n: usize) -> Vec<Event> {
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

    fn totals(store: &MemoryStore) -> Counts {
        let mut sum = Counts::default();
        store
            .aggregates
            .lock()
            .unwrap()
            .values()
            .for_each(|c| sum.add(*c));
        sum
    }

    fn config() -> JoinConfig {
        JoinConfig::from_minutes(10, 5, 5).unwrap()
    }

    #[test]
    fn a_batch_is_counted_exactly_and_the_same_batch_again_changes_nothing() {
        let store = MemoryStore::default();
        let first = run(process_batch(&store, &config(), scenario(100))).unwrap();
        assert_eq!(
            totals(&store),
            Counts {
                bids: 100,
                imps: 50,
                clicks: 25
            }
        );
        assert_eq!(first.joined.len(), 75);
        let again = run(process_batch(&store, &config(), scenario(100))).unwrap();
        assert_eq!(
            totals(&store),
            Counts {
                bids: 100,
                imps: 50,
                clicks: 25
            }
        );
        assert_eq!(
            (again.duplicates, again.increments.len(), again.joined.len()),
            (175, 0, 0)
        );
    }

    #[test]
    fn a_conflicting_transaction_is_reloaded_and_counted_once() {
        let store = MemoryStore::default();
        *store.conflict_once.lock().unwrap() = vec!["tx-0".into(), "tx-3".into()];
        let result = run(process_batch(&store, &config(), scenario(8))).unwrap();
        assert_eq!(
            totals(&store),
            Counts {
                bids: 8,
                imps: 4,
                clicks: 2
            }
        );
        let mut summed = Counts::default();
        result.increments.values().for_each(|c| summed.add(*c));
        assert_eq!(
            summed,
            totals(&store),
            "the result reports what was committed, once"
        );
    }

    #[test]
    fn a_transaction_that_never_stops_conflicting_is_an_error_naming_it() {
        struct AlwaysConflicts(Mutex<usize>);
        impl StateStore for AlwaysConflicts {
            async fn load(&self, _: &[String]) -> Result<HashMap<String, Transaction>, StoreError> {
                Ok(HashMap::new())
            }
            async fn commit(&self, changes: Vec<StateChange>) -> Result<CommitOutcome, StoreError> {
                *self.0.lock().unwrap() += 1;
                Ok(CommitOutcome {
                    conflicts: changes.into_iter().map(|c| c.state.tx_id).collect(),
                })
            }
        }
        let store = AlwaysConflicts(Mutex::new(0));
        let err = run(process_batch(&store, &config(), vec![bid("stuck")])).unwrap_err();
        assert!(
            matches!(&err, ProcessError::Contention(ids) if ids == &["stuck".to_owned()]),
            "{err}"
        );
        assert_eq!(*store.0.lock().unwrap(), MAX_ROUNDS);
    }
}
