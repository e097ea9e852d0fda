//! Processing a batch of stored events: load the state of their transactions, apply the join,
//! commit state and increments together, and retry transactions whose state changed meanwhile.
//! Shared by the `processor` Lambda and `sdp local`; the store decides how commits are chunked.

use std::collections::{BTreeMap, HashMap};

use crate::events::Event;
use crate::join::{self, AggregateKey, Counts, JoinConfig, Transaction};
use crate::ports::{StateChange, StateStore, StoreError};

/// How often a transaction whose state changed under us is reloaded before giving up. There is
/// one writer per `tx_id` (its shard) but for a minute after a resharding (see
/// `sdp_aws::KinesisLog`) and after an earlier failed attempt, so a few rounds are plenty.
const MAX_ROUNDS: usize = 5;

/// What a processed batch changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchResult {
    /// The increments committed, summed per aggregate.
    pub increments: BTreeMap<AggregateKey, Counts>,
    /// How many impressions and clicks joined in this batch (their lake rows are built from
    /// `states`).
    pub joined: usize,
    /// Events that changed nothing (already seen).
    pub duplicates: usize,
    /// Transactions the store refused for good, each with the store's reason: none of their
    /// events is counted, and they are to be kept aside (dead letters), not retried forever.
    pub rejected: Vec<(String, String)>,
    /// The state of each transaction of the batch as the store holds it after the call: as
    /// committed here, as found (duplicates only), or as it was (refused). The lake rows of the
    /// batch are derived from it (`landing`), so nothing is read back after the commit (but the
    /// rare refused transaction's state, as it was).
    pub states: HashMap<String, Transaction>,
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
/// events: what was committed before is recognised and not counted twice. Only the events a
/// state keeps are copied (the caller keeps the batch, for the lake).
pub async fn process_batch<S: StateStore>(
    store: &S,
    config: &JoinConfig,
    events: &[Event],
) -> Result<BatchResult, ProcessError> {
    let mut pending = join::by_transaction(events);
    let mut result = BatchResult::default();
    for _ in 0..MAX_ROUNDS {
        if pending.is_empty() {
            break;
        }
        let tx_ids: Vec<String> = pending.keys().map(|tx_id| (*tx_id).to_owned()).collect();
        let mut stored = store.load(&tx_ids).await?;
        let mut changes = Vec::new();
        let mut outcomes = BTreeMap::new();
        for (&tx_id, events) in &pending {
            let transition = join::apply(config, stored.remove(tx_id), events.iter().copied());
            result.duplicates += transition.duplicates;
            if transition.changed {
                changes.push(StateChange {
                    read_version: transition.read_version,
                    state: transition.state.clone(),
                    increments: transition.increments.clone(),
                });
                outcomes.insert(
                    tx_id.to_owned(),
                    (transition.increments, transition.joined, transition.state),
                );
            } else {
                result.states.insert(tx_id.to_owned(), transition.state);
            }
        }
        let outcome = store.commit(changes).await?;
        for (tx_id, reason) in outcome.rejected {
            outcomes.remove(&tx_id);
            pending.remove(tx_id.as_str());
            result.rejected.push((tx_id, reason));
        }
        let conflicts: std::collections::BTreeSet<String> = outcome.conflicts.into_iter().collect();
        for (tx_id, (increments, joined, state)) in outcomes {
            if conflicts.contains(&tx_id) {
                continue;
            }
            for (key, counts) in increments {
                result.increments.entry(key).or_default().add(counts);
            }
            result.joined += joined;
            result.states.insert(tx_id, state);
        }
        // Committed and duplicate-only transactions are done; conflicts go round again.
        pending.retain(|tx_id, _| conflicts.contains(*tx_id));
    }
    if pending.is_empty() {
        // A refused transaction keeps the state it had (rare: read it again).
        if !result.rejected.is_empty() {
            let refused: Vec<String> = result.rejected.iter().map(|(tx, _)| tx.clone()).collect();
            result.states.extend(store.load(&refused).await?);
        }
        Ok(result)
    } else {
        Err(ProcessError::Contention(
            pending.into_keys().map(str::to_owned).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::join::Transaction;
    use crate::memory::{bid, ready as run, scenario, MemoryState as MemoryStore};
    use crate::ports::CommitOutcome;

    fn totals(store: &MemoryStore) -> Counts {
        store.totals()
    }

    fn config() -> JoinConfig {
        JoinConfig::from_minutes(10, 5, 5).unwrap()
    }

    #[test]
    fn a_batch_is_counted_exactly_and_the_same_batch_again_changes_nothing() {
        let store = MemoryStore::default();
        let first = run(process_batch(&store, &config(), &scenario(100))).unwrap();
        assert_eq!(
            totals(&store),
            Counts {
                bids: 100,
                imps: 50,
                clicks: 25
            }
        );
        assert_eq!(first.joined, 75);
        let again = run(process_batch(&store, &config(), &scenario(100))).unwrap();
        assert_eq!(
            totals(&store),
            Counts {
                bids: 100,
                imps: 50,
                clicks: 25
            }
        );
        assert_eq!(
            (again.duplicates, again.increments.len(), again.joined),
            (175, 0, 0)
        );
    }

    #[test]
    fn the_result_holds_each_transactions_state_as_stored_so_landing_reads_nothing_back() {
        let store = MemoryStore::default();
        store.reject("tx-2");
        run(process_batch(&store, &config(), &scenario(4))).unwrap();
        // Again, with the first transactions' events all duplicates and tx-2 still refused.
        let events = scenario(8);
        let result = run(process_batch(&store, &config(), &events)).unwrap();
        let tx_ids: Vec<String> = join::by_transaction(&events)
            .into_keys()
            .map(str::to_owned)
            .collect();
        let stored = run(store.load(&tx_ids)).unwrap();
        assert_eq!(result.states, stored);
        assert!(!result.states.contains_key("tx-2"), "never stored");
        assert_eq!(result.states.len(), 7);
    }

    #[test]
    fn a_conflicting_transaction_is_reloaded_and_counted_once() {
        let store = MemoryStore::default();
        store.conflict_once("tx-0");
        store.conflict_once("tx-3");
        let result = run(process_batch(&store, &config(), &scenario(8))).unwrap();
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
    fn a_transaction_the_store_refuses_for_good_is_set_aside_and_the_rest_is_counted() {
        let store = MemoryStore::default();
        store.reject("tx-2");
        let result = run(process_batch(&store, &config(), &scenario(8))).unwrap();
        // tx-2 (a bid and its impression), refused with the store's reason.
        let refused: Vec<(&str, &str)> = result
            .rejected
            .iter()
            .map(|(tx, reason)| (tx.as_str(), reason.split(':').next().unwrap_or("")))
            .collect();
        assert_eq!(refused, [("tx-2", "ValidationError")]);
        assert_eq!(
            totals(&store),
            Counts {
                bids: 7,
                imps: 3,
                clicks: 2
            },
            "every other transaction counted, in the same call"
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
                    rejected: Vec::new(),
                })
            }
        }
        let store = AlwaysConflicts(Mutex::new(0));
        let err = run(process_batch(&store, &config(), &[bid("stuck")])).unwrap_err();
        assert!(
            matches!(&err, ProcessError::Contention(ids) if ids == &["stuck".to_owned()]),
            "{err}"
        );
        assert_eq!(*store.0.lock().unwrap(), MAX_ROUNDS);
    }
}
