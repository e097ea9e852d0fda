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
/// A transaction's request may not exceed 4 MB; chunks stay under this estimate of it (the
/// states' JSON and a generous allowance per item for names, keys and numbers).
const MAX_TRANSACTION_BYTES: usize = 3 * 1024 * 1024;
const ITEM_OVERHEAD_BYTES: usize = 512;
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
        for item in batch_get(&self.client, &self.state_table, keys).await? {
            let state = decode_state(&item)?;
            found.insert(state.tx_id.clone(), state);
        }
        Ok(())
    }

    /// Commits one chunk: the transactions whose condition failed (conflicts) and those DynamoDB
    /// refused for good (a `ValidationError`, e.g. an item over 400 KB) are left out and
    /// reported; the rest of the chunk is committed.
    async fn commit_chunk(&self, changes: &[StateChange]) -> Result<CommitOutcome, StoreError> {
        let mut live: Vec<&StateChange> = changes.iter().collect();
        let mut outcome = CommitOutcome::default();
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
                Ok(_) => return Ok(outcome),
                Err(err) => err,
            };
            let reasons: Vec<(Option<String>, Option<String>)> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
                    .cancellation_reasons()
                    .iter()
                    .map(|r| (r.code().map(str::to_owned), r.message().map(str::to_owned)))
                    .collect(),
                _ => return Err(classify("DynamoDB TransactWriteItems", err)),
            };
            // The state puts come first, one per change, in order. A failed condition there means
            // the state moved on since it was read; a validation error, that DynamoDB can never
            // store it. Both leave this chunk, and the rest is sent again.
            let settled: Vec<(usize, Settled)> = reasons
                .iter()
                .take(live.len())
                .enumerate()
                .filter_map(|(i, (code, message))| match code.as_deref() {
                    Some("ConditionalCheckFailed") => Some((i, Settled::Conflict)),
                    Some("ValidationError") => Some((
                        i,
                        Settled::Rejected(format!(
                            "ValidationError: {}",
                            message.as_deref().unwrap_or("no message")
                        )),
                    )),
                    _ => None,
                })
                .collect();
            if settled.is_empty() {
                // Cancelled for another reason (a concurrent transaction on a shared aggregate,
                // throttling): the whole chunk goes again after a pause.
                attempt += 1;
                if attempt >= ATTEMPTS {
                    return Err(transient(format!(
                        "DynamoDB TransactWriteItems cancelled {ATTEMPTS} times: {}",
                        reasons
                            .iter()
                            .filter_map(|(code, _)| code.clone())
                            .filter(|c| c != "None")
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                backoff(attempt, 25, 2000).await;
                continue;
            }
            for (i, settled) in settled.iter().rev() {
                let tx_id = live.remove(*i).state.tx_id.clone();
                match settled {
                    Settled::Conflict => outcome.conflicts.push(tx_id),
                    Settled::Rejected(reason) => outcome.rejected.push((tx_id, reason.clone())),
                }
            }
        }
        Ok(outcome)
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
            .set_key(Some(aggregate_item_key(key)))
            .update_expression("ADD bids :bids, imps :imps, clicks :clicks")
            .expression_attribute_values(":bids", AttributeValue::N(counts.bids.to_string()))
            .expression_attribute_values(":imps", AttributeValue::N(counts.imps.to_string()))
            .expression_attribute_values(":clicks", AttributeValue::N(counts.clicks.to_string()))
            .build()
            .map_err(|e| permanent(format!("cannot build an aggregate update: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// How a state put of a cancelled transaction was settled.
enum Settled {
    Conflict,
    Rejected(String),
}

/// Splits changes into transactions within DynamoDB's limits: at most 100 items (one put per
/// change plus one update per distinct aggregate in the chunk) and at most 4 MB.
///
/// The changes are first ordered by the aggregate they add to. Each change is one transaction's
/// own state, independent of the others, so they may commit in any order; ordered, the changes
/// of one campaign share as few transactions as possible, and a batch pays about one aggregate
/// update per campaign instead of one per campaign in every transaction (at 100 campaigns and
/// 500 events a batch, 0.2 updates per event instead of 0.8: `sdp cost` prices it).
fn chunks(mut changes: Vec<StateChange>) -> Vec<Vec<StateChange>> {
    changes.sort_by_key(|change| change.increments.iter().map(|(key, _)| *key).min());
    let mut chunks = Vec::new();
    let mut chunk: Vec<StateChange> = Vec::new();
    let mut keys: BTreeSet<AggregateKey> = BTreeSet::new();
    let mut bytes = 0;
    for change in changes {
        let new_keys = change
            .increments
            .iter()
            .filter(|(k, _)| !keys.contains(k))
            .count();
        let change_bytes = estimated_bytes(&change);
        let items = chunk.len() + 1 + keys.len() + new_keys;
        if !chunk.is_empty()
            && (items > MAX_TRANSACTION_ITEMS || bytes + change_bytes > MAX_TRANSACTION_BYTES)
        {
            chunks.push(std::mem::take(&mut chunk));
            keys.clear();
            bytes = 0;
        }
        keys.extend(change.increments.iter().map(|(k, _)| *k));
        bytes += change_bytes;
        chunk.push(change);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// What a change adds to a transaction's request: its state's JSON, and an allowance for the
/// item's other attributes and for each aggregate update it may bring.
fn estimated_bytes(change: &StateChange) -> usize {
    let state = serde_json::to_string(&change.state).map_or(0, |json| json.len());
    state + ITEM_OVERHEAD_BYTES * (1 + change.increments.len())
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

/// The items of `keys` (at most 100) in `table`, read strongly consistent with `BatchGetItem`;
/// the keys DynamoDB leaves unprocessed (throttling) are asked for again, alone.
async fn batch_get(
    client: &Client,
    table: &str,
    keys: Vec<HashMap<String, AttributeValue>>,
) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
    let mut found = Vec::with_capacity(keys.len());
    let mut request = Some(
        KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| permanent(format!("cannot build BatchGetItem keys: {e}")))?,
    );
    for attempt in 0..ATTEMPTS {
        let Some(keys) = request.take() else {
            return Ok(found);
        };
        if attempt > 0 {
            backoff(attempt, 25, 1000).await;
        }
        let output = client
            .batch_get_item()
            .request_items(table, keys)
            .send()
            .await
            .map_err(|e| classify("DynamoDB BatchGetItem", e))?;
        found.extend(
            output
                .responses()
                .and_then(|r| r.get(table))
                .into_iter()
                .flatten()
                .cloned(),
        );
        request = output
            .unprocessed_keys()
            .and_then(|u| u.get(table))
            .filter(|k| !k.keys().is_empty())
            .cloned();
    }
    match request {
        None => Ok(found),
        Some(left) => Err(transient(format!(
            "DynamoDB BatchGetItem: {} key(s) still unprocessed after {ATTEMPTS} attempts",
            left.keys().len()
        ))),
    }
}

fn decode_state(item: &HashMap<String, AttributeValue>) -> Result<Transaction, StoreError> {
    let text = item
        .get("state")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| permanent("a state item has no `state` string".to_owned()))?;
    serde_json::from_str(text).map_err(|e| permanent(format!("a state item does not decode: {e}")))
}

/// The key of an aggregate's item in the aggregates table.
fn aggregate_item_key(key: AggregateKey) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            "campaign_item_id".to_owned(),
            AttributeValue::N(key.campaign_item_id.to_string()),
        ),
        (
            "period".to_owned(),
            AttributeValue::N(key.period.to_string()),
        ),
    ])
}

/// The totals an aggregate's item holds.
fn aggregate_counts(item: &HashMap<String, AttributeValue>) -> Result<Counts, StoreError> {
    Ok(Counts {
        bids: number(item, "bids")?,
        imps: number(item, "imps")?,
        clicks: number(item, "clicks")?,
    })
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
            let chunk_outcome = self.commit_chunk(&chunk).await?;
            outcome.conflicts.extend(chunk_outcome.conflicts);
            outcome.rejected.extend(chunk_outcome.rejected);
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

    async fn windows(
        &self,
        keys: &[AggregateKey],
    ) -> Result<Vec<(AggregateKey, Counts)>, StoreError> {
        self.aggregates.windows(keys).await
    }
}

impl AggregateReader for DynamoAggregates {
    /// A `BatchGetItem` per 100 keys instead of a `Query` each (the same read units, one round
    /// trip): the processor reads every aggregate its batch counted into.
    async fn windows(
        &self,
        keys: &[AggregateKey],
    ) -> Result<Vec<(AggregateKey, Counts)>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_BATCH_GET_KEYS) {
            let keys = chunk.iter().copied().map(aggregate_item_key).collect();
            for item in batch_get(&self.client, &self.table, keys).await? {
                let key = AggregateKey {
                    campaign_item_id: number(&item, "campaign_item_id")?,
                    period: number(&item, "period")?,
                };
                found.push((key, aggregate_counts(&item)?));
            }
        }
        Ok(found)
    }

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
                    counts: aggregate_counts(item)?,
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

    /// DynamoDB's answer to a cancelled transaction: one reason per item, as AWS words them.
    fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
        let mut error = TransactionCanceledException::builder().message(format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ));
        for code in codes {
            let message = match *code {
                "ValidationError" => Some("Item size has exceeded the maximum allowed size"),
                "ConditionalCheckFailed" => Some("The conditional request failed"),
                "TransactionConflict" => Some("Transaction is ongoing for the item"),
                "ThrottlingError" => Some("Throughput exceeds the current capacity for one or more global secondary indexes. DynamoDB is automatically scaling your index so please be patient."),
                _ => None,
            };
            error = error.cancellation_reasons(
                CancellationReason::builder()
                    .code(*code)
                    .set_message(message.map(str::to_owned))
                    .build(),
            );
        }
        TransactWriteItemsError::TransactionCanceledException(error.build())
    }

    #[tokio::test]
    async fn an_item_dynamodb_refuses_for_good_is_rejected_with_its_reason_and_the_rest_commits() {
        // Items: put a, put b, then the shared aggregate. b's state is over the item limit: the
        // adapter used to take that for contention and fail the whole batch after eight rounds.
        let first = mock!(Client::transact_write_items)
            .match_requests(|r| r.transact_items().len() == 3)
            .then_error(|| cancelled(&["None", "ValidationError", "None"]));
        let second = mock!(Client::transact_write_items)
            .match_requests(|r| r.transact_items().len() == 2)
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&first, &second]);
        let store = DynamoStore::new(client, "state", "aggregates");
        let outcome = store
            .commit(vec![change("a", &[(1, 0)]), change("b", &[(1, 0)])])
            .await
            .unwrap();
        assert!(outcome.conflicts.is_empty());
        assert_eq!(
            outcome.rejected,
            [(
                "b".to_owned(),
                "ValidationError: Item size has exceeded the maximum allowed size".to_owned()
            )]
        );
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn throttled_transactions_are_sent_again_and_persistent_throttling_is_transient() {
        let rule = mock!(Client::transact_write_items)
            .sequence()
            .error(|| cancelled(&["ThrottlingError", "None"]))
            .output(|| TransactWriteItemsOutput::builder().build())
            .build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
        let store = DynamoStore::new(client, "state", "aggregates");
        let outcome = store.commit(vec![change("t", &[(1, 0)])]).await.unwrap();
        assert_eq!(outcome, CommitOutcome::default());
        assert_eq!(rule.num_calls(), 2);

        let always = mock!(Client::transact_write_items)
            .then_error(|| cancelled(&["ThrottlingError", "None"]));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&always]);
        let store = DynamoStore::new(client, "state", "aggregates");
        let err = store
            .commit(vec![change("t", &[(1, 0)])])
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("ThrottlingError"), "{err}");
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
    fn chunks_stay_under_the_transaction_request_size_limit() {
        // States near the item limit: 100 of them would be a 30 MB request.
        let changes: Vec<StateChange> = (0..100)
            .map(|i| {
                let mut c = change(&format!("t{i}"), &[(1, 0)]);
                c.state.tx_id = format!("{i}-{}", "x".repeat(300_000));
                c
            })
            .collect();
        let chunks = chunks(changes);
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(estimated_bytes).sum();
            assert!(bytes <= MAX_TRANSACTION_BYTES, "{bytes} bytes");
        }
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 100);
        assert_eq!(chunks.len(), 10, "ten states of about 300 KB per 3 MB");
    }

    #[test]
    fn changes_of_one_aggregate_share_transactions() {
        // 500 changes over 100 campaigns, as a batch interleaves them: in arrival order each
        // transaction of ~55 changes would carry ~45 aggregate updates (about 400 in all).
        let changes: Vec<StateChange> = (0..500)
            .map(|i| change(&format!("t{i}"), &[(i % 100, 0)]))
            .collect();
        let chunks = chunks(changes);
        let updates: usize = chunks
            .iter()
            .map(|chunk| {
                chunk
                    .iter()
                    .flat_map(|c| c.increments.iter().map(|(k, _)| *k))
                    .collect::<BTreeSet<AggregateKey>>()
                    .len()
            })
            .sum();
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 500);
        assert!(
            updates <= 100 + chunks.len(),
            "{updates} aggregate updates in {} transactions",
            chunks.len()
        );
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
