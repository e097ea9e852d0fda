//! Join state and aggregates in DynamoDB, committed exactly once.
//!
//! A state item is `{tx_id (S), version (N), expires_at (N, TTL), state (S, JSON)}`. An aggregate
//! item is `{campaign_item_id (N), period (N), bids, imps, clicks}`. A commit is a
//! `TransactWriteItems` of state puts, each guarded by `attribute_not_exists(tx_id) OR version =
//! :read`, and `ADD`s to the aggregates: all or nothing, so an increment is applied exactly when
//! its state change is. A redelivered batch then finds its events already in the state and adds
//! nothing (see `sdp_core::join`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use sdp_core::join::{AggregateKey, Counts, Transaction};
use sdp_core::ports::{AggregateReader, CommitOutcome, StateChange, StateStore, StoreError};
use sdp_core::reports::WindowCounts;

use crate::error::{backoff, classify, permanent, transient};

/// DynamoDB's limits: items per transaction, keys per BatchGetItem.
const MAX_TRANSACTION_ITEMS: usize = 100;
const MAX_BATCH_GET_KEYS: usize = 100;
/// Rounds for throttled keys or transactions that collided with another writer of an aggregate.
const ATTEMPTS: u32 = 8;

/// The join state and the aggregates: what the processor commits to.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    state_table: String,
    aggregates_table: String,
    aggregates: DynamoAggregates,
}

/// The aggregates table alone, read-only: what the reports function needs.
#[derive(Debug, Clone)]
pub struct DynamoAggregates {
    client: Client,
    table: String,
}

impl DynamoAggregates {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoAggregates {
            client,
            table: table.into(),
        }
    }
}

impl DynamoStore {
    pub fn new(
        client: Client,
        state_table: impl Into<String>,
        aggregates_table: impl Into<String>,
    ) -> Self {
        let aggregates_table = aggregates_table.into();
        DynamoStore {
            aggregates: DynamoAggregates::new(client.clone(), aggregates_table.clone()),
            client,
            state_table: state_table.into(),
            aggregates_table,
        }
    }

    async fn load_chunk(
        &self,
        tx_ids: &[String],
        found: &mut HashMap<String, Transaction>,
    ) -> Result<(), StoreError> {
        let keys = tx_ids
            .iter()
            .map(|id| HashMap::from([("tx_id".to_owned(), AttributeValue::S(id.clone()))]))
            .collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| permanent(format!("cannot build BatchGetItem keys: {e}")))?,
        );
        for attempt in 0..ATTEMPTS {
            let Some(keys) = request.take() else {
                return Ok(());
            };
            if attempt > 0 {
                backoff(attempt, 25, 1000).await;
            }
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.state_table, keys)
                .send()
                .await
                .map_err(|e| classify("DynamoDB BatchGetItem", e))?;
            for item in output
                .responses()
                .and_then(|r| r.get(&self.state_table))
                .into_iter()
                .flatten()
            {
                let state = decode_state(item)?;
                found.insert(state.tx_id.clone(), state);
            }
            // Throttled keys come back unprocessed: ask again for exactly those.
            request = output
                .unprocessed_keys()
                .and_then(|u| u.get(&self.state_table))
                .filter(|k| !k.keys().is_empty())
                .cloned();
        }
        match request {
            None => Ok(()),
            Some(left) => Err(transient(format!(
                "DynamoDB BatchGetItem: {} key(s) still unprocessed after {ATTEMPTS} attempts",
                left.keys().len()
            ))),
        }
    }

    /// Commits one chunk; returns the transactions whose condition failed (not applied).
    async fn commit_chunk(&self, changes: &[StateChange]) -> Result<Vec<String>, StoreError> {
        let mut live: Vec<&StateChange> = changes.iter().collect();
        let mut conflicts = Vec::new();
        let mut attempt = 0;
        while !live.is_empty() {
            let items = self.transaction_items(&live)?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .client_request_token(request_token(&live))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(conflicts),
                Err(err) => err,
            };
            let reasons: Vec<Option<String>> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().map(str::to_owned))
                    .collect(),
                _ => return Err(classify("DynamoDB TransactWriteItems", err)),
            };
            // The state puts come first, one per change, in order: a failed condition there
            // means the state moved on since it was read. Drop those and send the rest again.
            let failed: BTreeSet<usize> = reasons
                .iter()
                .take(live.len())
                .enumerate()
                .filter(|(_, code)| code.as_deref() == Some("ConditionalCheckFailed"))
                .map(|(i, _)| i)
                .collect();
            if failed.is_empty() {
                // Cancelled for another reason (a concurrent transaction on a shared aggregate,
                // throttling): the whole chunk goes again after a pause.
                attempt += 1;
                if attempt >= ATTEMPTS {
                    return Err(transient(format!(
                        "DynamoDB TransactWriteItems cancelled {ATTEMPTS} times: {}",
                        reasons
                            .iter()
                            .flatten()
                            .filter(|c| *c != "None")
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                backoff(attempt, 25, 2000).await;
                continue;
            }
            let mut index = 0;
            live.retain(|change| {
                let keep = !failed.contains(&index);
                if !keep {
                    conflicts.push(change.state.tx_id.clone());
                }
                index += 1;
                keep
            });
        }
        Ok(conflicts)
    }

    fn transaction_items(
        &self,
        changes: &[&StateChange],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut items = Vec::with_capacity(MAX_TRANSACTION_ITEMS);
        let mut increments: BTreeMap<AggregateKey, Counts> = BTreeMap::new();
        for change in changes {
            items.push(self.state_put(change)?);
            for (key, counts) in &change.increments {
                increments.entry(*key).or_default().add(*counts);
            }
        }
        // One update per aggregate: a transaction may not touch an item twice.
        for (key, counts) in increments {
            items.push(self.aggregate_add(key, counts)?);
        }
        Ok(items)
    }

    fn state_put(&self, change: &StateChange) -> Result<TransactWriteItem, StoreError> {
        let state = &change.state;
        let json = serde_json::to_string(state)
            .map_err(|e| permanent(format!("cannot encode the state of `{}`: {e}", state.tx_id)))?;
        let put = Put::builder()
            .table_name(&self.state_table)
            .item("tx_id", AttributeValue::S(state.tx_id.clone()))
            .item("version", AttributeValue::N(state.version.to_string()))
            .item(
                "expires_at",
                AttributeValue::N(state.expires_at.to_string()),
            )
            .item("state", AttributeValue::S(json))
            .condition_expression("attribute_not_exists(tx_id) OR version = :read")
            .expression_attribute_values(
                ":read",
                AttributeValue::N(change.read_version.to_string()),
            )
            .build()
            .map_err(|e| permanent(format!("cannot build a state put: {e}")))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn aggregate_add(
        &self,
        key: AggregateKey,
        counts: Counts,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.aggregates_table)
            .key(
                "campaign_item_id",
                AttributeValue::N(key.campaign_item_id.to_string()),
            )
            .key("period", AttributeValue::N(key.period.to_string()))
            .update_expression("ADD bids :bids, imps :imps, clicks :clicks")
            .expression_attribute_values(":bids", AttributeValue::N(counts.bids.to_string()))
            .expression_attribute_values(":imps", AttributeValue::N(counts.imps.to_string()))
            .expression_attribute_values(":clicks", AttributeValue::N(counts.clicks.to_string()))
            .build()
            .map_err(|e| permanent(format!("cannot build an aggregate update: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// Splits changes into transactions of at most 100 items: one put per change plus one update per
/// distinct aggregate in the chunk.
fn chunks(changes: Vec<StateChange>) -> Vec<Vec<StateChange>> {
    let mut chunks = Vec::new();
    let mut chunk: Vec<StateChange> = Vec::new();
    let mut keys: BTreeSet<AggregateKey> = BTreeSet::new();
    for change in changes {
        let new_keys = change
            .increments
            .iter()
            .filter(|(k, _)| !keys.contains(k))
            .count();
        if !chunk.is_empty() && chunk.len() + 1 + keys.len() + new_keys > MAX_TRANSACTION_ITEMS {
            chunks.push(std::mem::take(&mut chunk));
            keys.clear();
        }
        keys.extend(change.increments.iter().map(|(k, _)| *k));
        chunk.push(change);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// An idempotency token derived from the chunk's content: an SDK retry of a transaction that did
/// commit (its response lost) is recognised by DynamoDB instead of failing its conditions.
fn request_token(changes: &[&StateChange]) -> String {
    let mut first = std::collections::hash_map::DefaultHasher::new();
    let mut second = std::collections::hash_map::DefaultHasher::new();
    0xa5u8.hash(&mut second);
    for change in changes {
        for hasher in [&mut first, &mut second] {
            change.state.tx_id.hash(hasher);
            change.read_version.hash(hasher);
            change.state.version.hash(hasher);
        }
    }
    format!("{:016x}{:016x}", first.finish(), second.finish())
}

fn decode_state(item: &HashMap<String, AttributeValue>) -> Result<Transaction, StoreError> {
    let text = item
        .get("state")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| permanent("a state item has no `state` string".to_owned()))?;
    serde_json::from_str(text).map_err(|e| permanent(format!("a state item does not decode: {e}")))
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        None => Ok(0),
        Some(value) => value
            .as_n()
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                permanent(format!(
                    "aggregate attribute `{name}` is not an integer: {value:?}"
                ))
            }),
    }
}

impl StateStore for DynamoStore {
    async fn load(&self, tx_ids: &[String]) -> Result<HashMap<String, Transaction>, StoreError> {
        let mut found = HashMap::new();
        for chunk in tx_ids.chunks(MAX_BATCH_GET_KEYS) {
            self.load_chunk(chunk, &mut found).await?;
        }
        Ok(found)
    }

    async fn commit(&self, changes: Vec<StateChange>) -> Result<CommitOutcome, StoreError> {
        let mut outcome = CommitOutcome::default();
        for chunk in chunks(changes) {
            outcome.conflicts.extend(self.commit_chunk(&chunk).await?);
        }
        Ok(outcome)
    }
}

impl AggregateReader for DynamoStore {
    async fn campaign(
        &self,
        campaign_item_id: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        self.aggregates.campaign(campaign_item_id, from, to).await
    }
}

impl AggregateReader for DynamoAggregates {
    async fn campaign(
        &self,
        campaign_item_id: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        let mut rows = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(
                    "campaign_item_id = :campaign AND #period BETWEEN :from AND :to",
                )
                .expression_attribute_names("#period", "period")
                .expression_attribute_values(
                    ":campaign",
                    AttributeValue::N(campaign_item_id.to_string()),
                )
                .expression_attribute_values(":from", AttributeValue::N(from.to_string()))
                .expression_attribute_values(":to", AttributeValue::N(to.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("DynamoDB Query", e))?;
            for item in output.items() {
                rows.push(WindowCounts {
                    period: number(item, "period")?,
                    counts: Counts {
                        bids: number(item, "bids")?,
                        imps: number(item, "imps")?,
                        clicks: number(item, "clicks")?,
                    },
                });
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(rows),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
        let mut error = TransactionCanceledException::builder().message("Transaction cancelled");
        for code in codes {
            error = error.cancellation_reasons(CancellationReason::builder().code(*code).build());
        }
        TransactWriteItemsError::TransactionCanceledException(error.build())
    }

    #[tokio::test]
    async fn a_transaction_cancelled_by_a_concurrent_writer_of_an_aggregate_is_sent_again() {
        let rule = mock!(Client::transact_write_items)
            .sequence()
            .error(|| cancelled(&["None", "TransactionConflict"]))
            .output(|| TransactWriteItemsOutput::builder().build())
            .build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
        let store = DynamoStore::new(client, "state", "aggregates");
        let outcome = store.commit(vec![change("t", &[(1, 0)])]).await.unwrap();
        assert!(outcome.conflicts.is_empty());
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn only_the_stale_transactions_are_conflicts_and_the_rest_are_sent_again() {
        // Items: put a, put b, put c, then the one shared aggregate. b's condition failed.
        let first = mock!(Client::transact_write_items)
            .match_requests(|r| r.transact_items().len() == 4)
            .then_error(|| cancelled(&["None", "ConditionalCheckFailed", "None", "None"]));
        let second = mock!(Client::transact_write_items)
            .match_requests(|r| {
                let puts: Vec<&str> = r
                    .transact_items()
                    .iter()
                    .filter_map(|i| {
                        i.put()
                            .and_then(|p| p.item().get("tx_id"))
                            .and_then(|v| v.as_s().ok())
                            .map(String::as_str)
                    })
                    .collect();
                puts == ["a", "c"]
            })
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&first, &second]);
        let store = DynamoStore::new(client, "state", "aggregates");
        let changes = vec![
            change("a", &[(1, 0)]),
            change("b", &[(1, 0)]),
            change("c", &[(1, 0)]),
        ];
        let outcome = store.commit(changes).await.unwrap();
        assert_eq!(outcome.conflicts, ["b"]);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn unprocessed_keys_are_asked_for_again() {
        let state = |tx: &str| {
            let json = serde_json::to_string(&Transaction::new(tx)).unwrap();
            HashMap::from([
                ("tx_id".to_owned(), AttributeValue::S(tx.to_owned())),
                ("state".to_owned(), AttributeValue::S(json)),
            ])
        };
        let key_b = HashMap::from([("tx_id".to_owned(), AttributeValue::S("b".into()))]);
        let first = mock!(Client::batch_get_item)
            .match_requests(|r| {
                r.request_items()
                    .is_some_and(|i| i["state"].keys().len() == 2)
            })
            .then_output(move || {
                BatchGetItemOutput::builder()
                    .responses("state", vec![state("a")])
                    .unprocessed_keys(
                        "state",
                        KeysAndAttributes::builder()
                            .keys(key_b.clone())
                            .build()
                            .unwrap(),
                    )
                    .build()
            });
        let second = mock!(Client::batch_get_item)
            .match_requests(|r| {
                r.request_items()
                    .is_some_and(|i| i["state"].keys().len() == 1)
            })
            .then_output(move || {
                BatchGetItemOutput::builder()
                    .responses("state", vec![state("b")])
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&first, &second]);
        let store = DynamoStore::new(client, "state", "aggregates");
        let loaded = store.load(&["a".into(), "b".into()]).await.unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    fn change(tx: &str, keys: &[(i64, i64)]) -> StateChange {
        StateChange {
            read_version: 0,
            state: Transaction::new(tx),
            increments: keys
                .iter()
                .map(|(c, p)| {
                    (
                        AggregateKey {
                            campaign_item_id: *c,
                            period: *p,
                        },
                        Counts {
                            bids: 1,
                            imps: 0,
                            clicks: 0,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn chunks_never_exceed_the_transaction_item_limit() {
        // 300 transactions, each touching its own two aggregates: 3 items each.
        let changes: Vec<StateChange> = (0..300)
            .map(|i| change(&format!("t{i}"), &[(i, 0), (i, 600)]))
            .collect();
        let chunks = chunks(changes);
        let mut seen = 0;
        for chunk in &chunks {
            let keys: BTreeSet<AggregateKey> = chunk
                .iter()
                .flat_map(|c| c.increments.iter().map(|(k, _)| *k))
                .collect();
            assert!(
                chunk.len() + keys.len() <= MAX_TRANSACTION_ITEMS,
                "{} items",
                chunk.len() + keys.len()
            );
            seen += chunk.len();
        }
        assert_eq!(seen, 300);
        assert_eq!(chunks.len(), 10, "33 transactions of 3 items fit in 100");
    }

    #[test]
    fn shared_aggregates_count_once_per_chunk() {
        let changes: Vec<StateChange> = (0..150)
            .map(|i| change(&format!("t{i}"), &[(1, 0)]))
            .collect();
        let chunks = chunks(changes);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [99, 51]);
    }

    #[test]
    fn the_request_token_depends_on_content_and_fits_dynamodb() {
        let a = change("a", &[]);
        let b = change("b", &[]);
        let token = request_token(&[&a, &b]);
        assert_eq!(token.len(), 32);
        assert_eq!(token, request_token(&[&a, &b]));
        assert_ne!(token, request_token(&[&a]));
    }
}
