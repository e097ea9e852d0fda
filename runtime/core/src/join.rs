//! Joining bids, impressions and clicks by `tx_id`, and counting each (`tx_id`, type) once
//! (CONTRACT.md §5.1).
//!
//! All that is known of one transaction lives in one [`Transaction`] record: the first event of
//! each type and which of them were counted. Applying an event is a pure state transition that
//! yields the increments to add to the aggregates; the lake rows of the joined impression and click
//! are built from the state ([`joined_rows`]), whoever lands them. An event
//! whose type is already recorded changes nothing, so redelivered or replayed events are no-ops.
//! Storing the new state and adding its increments in one atomic commit, guarded by the state's
//! `version`, makes the counts exact under retries (the adapters' job).
//!
//! Rules, all on event time (`ts`):
//! - a bid counts in the window of its `ts`, for its campaign;
//! - an impression counts, for its bid's campaign and in the window of its own `ts`, once its bid is
//!   known and the two are at most `BidsSessionTimeout` apart, in either order;
//! - a click counts likewise once its impression has counted and the two are at most
//!   `ClicksSessionTimeout` apart.
//!
//! A second event of a type already seen is ignored even if it would have joined: the first one
//! posted is the one that counts.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventBody, EventType};
use crate::window::WindowLength;

/// How events join and aggregate; from the stack parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinConfig {
    pub window: WindowLength,
    pub bids_session_timeout_ms: i64,
    pub clicks_session_timeout_ms: i64,
    /// How long a transaction's state is kept after the latest receive time of its events, in
    /// seconds. Long enough to recognise any redelivery: Kinesis keeps records 24 h at most.
    /// Anchored on receive time, never on the client's `ts`: a backfilled event may be older than
    /// the retention, and state stored already expired would count its redelivery again.
    pub state_retention_seconds: i64,
}

impl JoinConfig {
    /// The configuration from the stack parameters (in minutes), with a 7-day state retention.
    pub fn from_minutes(
        aggregation_period: i64,
        bids_session_timeout: i64,
        clicks_session_timeout: i64,
    ) -> Result<JoinConfig, crate::window::InvalidWindowLength> {
        Ok(JoinConfig {
            window: WindowLength::from_minutes(aggregation_period)?,
            bids_session_timeout_ms: bids_session_timeout.max(0) * 60_000,
            clicks_session_timeout_ms: clicks_session_timeout.max(0) * 60_000,
            state_retention_seconds: 7 * 24 * 3600,
        })
    }
}

/// Which events of a transaction have been counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    pub bid: bool,
    pub impression: bool,
    pub click: bool,
}

/// Everything known of one `tx_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub tx_id: String,
    /// Incremented on every change; the commit is conditional on the version it read.
    pub version: u64,
    // Boxed: most transactions hold one or two events, and an empty slot then costs a pointer,
    // not an event's width (the state of every transaction of a batch is held at once).
    pub bid: Option<Box<Event>>,
    pub impression: Option<Box<Event>>,
    pub click: Option<Box<Event>>,
    pub counted: Counted,
    /// When the state may be forgotten, epoch seconds (DynamoDB TTL).
    pub expires_at: i64,
}

impl Transaction {
    pub fn new(tx_id: &str) -> Transaction {
        Transaction {
            tx_id: tx_id.to_owned(),
            version: 0,
            bid: None,
            impression: None,
            click: None,
            counted: Counted::default(),
            expires_at: 0,
        }
    }

    fn slot(&mut self, event_type: EventType) -> &mut Option<Box<Event>> {
        match event_type {
            EventType::Bid => &mut self.bid,
            EventType::Impression => &mut self.impression,
            EventType::Click => &mut self.click,
        }
    }
}

/// The key of one aggregate: a campaign and a window start (epoch seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AggregateKey {
    pub campaign_item_id: i64,
    pub period: i64,
}

/// Counts to add to one aggregate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub bids: i64,
    pub imps: i64,
    pub clicks: i64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.bids += other.bids;
        self.imps += other.imps;
        self.clicks += other.clicks;
    }

    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// A joined impression or click with the attributes of its bid: a row of `impressions`/`clicks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedEvent {
    #[serde(skip)]
    pub event_type: Option<EventType>,
    pub tx_id: String,
    pub ts: i64,
    pub received_at: i64,
    pub campaign_item_id: i64,
    pub app_uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creative_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creative_category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The price paid for the impression (a click carries its impression's).
    pub win_price: i64,
}

/// What applying events to a transaction produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The version the state had when read (0 for a transaction not stored yet).
    pub read_version: u64,
    /// The state after the events: handed back even when unchanged, so a caller that moved its
    /// state in never loses it.
    pub state: Transaction,
    /// Whether the state changed and must be committed (false when every event was a duplicate).
    pub changed: bool,
    /// The counts to add, one entry per aggregate (at most one per event type).
    pub increments: Vec<(AggregateKey, Counts)>,
    /// How many lake rows (impressions and clicks) joined: [`joined_rows`] of the state builds
    /// them, so the rows of a commit are the same whoever derives them and whenever.
    pub joined: usize,
    /// Events ignored because their (`tx_id`, type) was already recorded.
    pub duplicates: usize,
}

/// Applies `events` (all with the transaction's `tx_id`, in stream order) to its stored state;
/// the events it keeps are copied. A caller that can give its events away uses [`apply_owned`].
pub fn apply<'a>(
    config: &JoinConfig,
    stored: Option<Transaction>,
    events: impl IntoIterator<Item = &'a Event>,
) -> Transition {
    apply_events(config, stored, events.into_iter().map(Cow::Borrowed))
}

/// [`apply`], moving the events it keeps into the state instead of copying them.
pub fn apply_owned(
    config: &JoinConfig,
    stored: Option<Transaction>,
    events: impl IntoIterator<Item = Event>,
) -> Transition {
    apply_events(config, stored, events.into_iter().map(Cow::Owned))
}

fn apply_events<'a>(
    config: &JoinConfig,
    stored: Option<Transaction>,
    events: impl Iterator<Item = Cow<'a, Event>>,
) -> Transition {
    let read_version = stored.as_ref().map_or(0, |t| t.version);
    let mut state = stored.unwrap_or_else(|| Transaction::new(""));
    let mut duplicates = 0;
    let mut kept = 0;
    for event in events {
        if state.tx_id.is_empty() {
            state.tx_id.clone_from(&event.tx_id);
        }
        let expires_at = event.received_at.div_euclid(1000) + config.state_retention_seconds;
        let slot = state.slot(event.event_type());
        if slot.is_none() {
            *slot = Some(Box::new(event.into_owned()));
            state.expires_at = state.expires_at.max(expires_at);
            kept += 1;
        } else {
            duplicates += 1;
        }
    }
    if kept == 0 {
        return Transition {
            read_version,
            state,
            changed: false,
            increments: Vec::new(),
            joined: 0,
            duplicates,
        };
    }
    let mut increments: Vec<(AggregateKey, Counts)> = Vec::new();
    let mut joined = 0;
    let mut count = |campaign_item_id: i64, ts: i64, counts: Counts| {
        let key = AggregateKey {
            campaign_item_id,
            period: config.window.start_of(ts),
        };
        match increments.iter_mut().find(|(k, _)| *k == key) {
            Some((_, summed)) => summed.add(counts),
            None => increments.push((key, counts)),
        }
    };

    if let Some(
        bid_event @ Event {
            body: EventBody::Bid(bid),
            ..
        },
    ) = state.bid.as_deref()
    {
        if !state.counted.bid {
            state.counted.bid = true;
            count(
                bid.campaign_item_id,
                bid_event.ts,
                Counts {
                    bids: 1,
                    ..Counts::default()
                },
            );
        }
        if let Some(
            imp @ Event {
                body: EventBody::Impression { .. },
                ..
            },
        ) = state.impression.as_deref()
        {
            if !state.counted.impression
                && (imp.ts - bid_event.ts).abs() <= config.bids_session_timeout_ms
            {
                state.counted.impression = true;
                count(
                    bid.campaign_item_id,
                    imp.ts,
                    Counts {
                        imps: 1,
                        ..Counts::default()
                    },
                );
                joined += 1;
            }
            if let Some(click) = state.click.as_deref() {
                if state.counted.impression
                    && !state.counted.click
                    && (click.ts - imp.ts).abs() <= config.clicks_session_timeout_ms
                {
                    state.counted.click = true;
                    count(
                        bid.campaign_item_id,
                        click.ts,
                        Counts {
                            clicks: 1,
                            ..Counts::default()
                        },
                    );
                    joined += 1;
                }
            }
        }
    }
    state.version = read_version + 1;
    Transition {
        read_version,
        state,
        changed: true,
        increments,
        joined,
        duplicates,
    }
}

fn joined_event(
    event_type: EventType,
    event: &Event,
    bid: &crate::events::Bid,
    win_price: i64,
) -> JoinedEvent {
    JoinedEvent {
        event_type: Some(event_type),
        tx_id: event.tx_id.clone(),
        ts: event.ts,
        received_at: event.received_at,
        campaign_item_id: bid.campaign_item_id,
        app_uid: bid.app_uid.clone(),
        creative_id: bid.creative_id.clone(),
        creative_category: bid.creative_category.clone(),
        domain: bid.domain.clone(),
        win_price,
    }
}

/// The lake rows of a transaction's counted impression and click, rebuilt from its state. The same
/// state always gives the same rows, so a writer that derives its rows from the state after a
/// commit can write them again after a crash and produce exact duplicates, which compaction drops.
pub fn joined_rows(state: &Transaction) -> Vec<JoinedEvent> {
    let mut rows = Vec::new();
    let (Some(bid_event), Some(imp)) = (state.bid.as_deref(), state.impression.as_deref()) else {
        return rows;
    };
    let (EventBody::Bid(bid), EventBody::Impression { win_price }) = (&bid_event.body, &imp.body)
    else {
        return rows;
    };
    if state.counted.impression {
        rows.push(joined_event(EventType::Impression, imp, bid, *win_price));
        if let (true, Some(click)) = (state.counted.click, state.click.as_deref()) {
            rows.push(joined_event(EventType::Click, click, bid, *win_price));
        }
    }
    rows
}

/// The aggregates a transaction's counted events were added to: its bid's campaign and the window
/// of each counted event's own time. A writer that snapshots these aggregates after a commit
/// covers every aggregate the commit changed (and perhaps some it did not, which is harmless).
pub fn aggregate_keys(config: &JoinConfig, state: &Transaction) -> Vec<AggregateKey> {
    let Some(Event {
        body: EventBody::Bid(bid),
        ..
    }) = state.bid.as_deref()
    else {
        return Vec::new();
    };
    let counted = [
        (state.counted.bid, &state.bid),
        (state.counted.impression, &state.impression),
        (state.counted.click, &state.click),
    ];
    let mut keys: Vec<AggregateKey> = counted
        .into_iter()
        .filter_map(|(counted, event)| event.as_ref().filter(|_| counted))
        .map(|event| AggregateKey {
            campaign_item_id: bid.campaign_item_id,
            period: config.window.start_of(event.ts),
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Groups a batch of events by `tx_id`, keeping stream order within each transaction.
pub fn by_transaction(events: &[Event]) -> BTreeMap<&str, Vec<&Event>> {
    let mut groups: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for event in events {
        groups.entry(event.tx_id.as_str()).or_default().push(event);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Bid;

    const T0: i64 = 1_763_780_400_000; // a window boundary for 10-minute windows
    const MIN: i64 = 60_000;

    fn config() -> JoinConfig {
        JoinConfig::from_minutes(10, 5, 5).unwrap()
    }

    fn event(tx: &str, ts: i64, body: EventBody) -> Event {
        Event {
            tx_id: tx.into(),
            ts,
            received_at: ts,
            body,
        }
    }

    fn bid(tx: &str, ts: i64, campaign: i64) -> Event {
        event(
            tx,
            ts,
            EventBody::Bid(Bid {
                campaign_item_id: campaign,
                app_uid: "u".into(),
                creative_id: Some("c".into()),
                creative_category: None,
                domain: Some("d".into()),
                win_price: None,
            }),
        )
    }

    fn imp(tx: &str, ts: i64) -> Event {
        event(tx, ts, EventBody::Impression { win_price: 7 })
    }

    fn click(tx: &str, ts: i64) -> Event {
        event(tx, ts, EventBody::Click)
    }

    /// Feeds events one at a time, each as its own delivery, and sums what was counted; the lake
    /// rows are those of the final states.
    fn run(events: &[Event]) -> (BTreeMap<AggregateKey, Counts>, Vec<JoinedEvent>) {
        let mut states: BTreeMap<String, Transaction> = BTreeMap::new();
        let mut totals: BTreeMap<AggregateKey, Counts> = BTreeMap::new();
        let mut joined = 0;
        for e in events {
            // Move the state in and take it back, as a store-less caller would.
            let t = apply(&config(), states.remove(&e.tx_id), std::slice::from_ref(e));
            states.insert(e.tx_id.clone(), t.state);
            for (k, c) in t.increments {
                totals.entry(k).or_default().add(c);
            }
            joined += t.joined;
        }
        let rows: Vec<JoinedEvent> = states.values().flat_map(joined_rows).collect();
        assert_eq!(rows.len(), joined, "the transitions' count of joined rows");
        (totals, rows)
    }

    fn sum_of(increments: &[(AggregateKey, Counts)]) -> Counts {
        let mut sum = Counts::default();
        increments.iter().for_each(|(_, c)| sum.add(*c));
        sum
    }

    fn total(totals: &BTreeMap<AggregateKey, Counts>) -> Counts {
        let mut sum = Counts::default();
        totals.values().for_each(|c| sum.add(*c));
        sum
    }

    fn counts(bids: i64, imps: i64, clicks: i64) -> Counts {
        Counts { bids, imps, clicks }
    }

    #[test]
    fn a_bid_its_impression_and_its_click_each_count_once_for_the_bids_campaign() {
        let (totals, joined) = run(&[
            bid("a", T0, 42),
            imp("a", T0 + MIN),
            click("a", T0 + 2 * MIN),
        ]);
        assert_eq!(totals.len(), 1);
        let (key, c) = totals.iter().next().unwrap();
        assert_eq!((key.campaign_item_id, key.period), (42, T0 / 1000));
        assert_eq!(*c, counts(1, 1, 1));
        assert_eq!(joined.len(), 2);
        assert!(joined
            .iter()
            .all(|j| j.campaign_item_id == 42 && j.domain.as_deref() == Some("d")));
        assert!(
            joined.iter().all(|j| j.win_price == 7),
            "a click carries its impression's price"
        );
    }

    #[test]
    fn a_states_rows_are_its_counted_impression_and_click_whatever_the_order() {
        for order in [
            vec![
                bid("t", T0, 1),
                imp("t", T0 + MIN),
                click("t", T0 + 2 * MIN),
            ],
            vec![
                click("t", T0 + 2 * MIN),
                imp("t", T0 + MIN),
                bid("t", T0, 1),
            ],
        ] {
            let (_, rows) = run(&order);
            let kinds: Vec<_> = rows.iter().map(|r| (r.event_type, r.ts)).collect();
            assert_eq!(
                kinds,
                [
                    (Some(EventType::Impression), T0 + MIN),
                    (Some(EventType::Click), T0 + 2 * MIN)
                ]
            );
        }
        let alone = apply(&config(), None, &[imp("u", T0)]).state;
        assert!(joined_rows(&alone).is_empty(), "no bid, nothing joined");
    }

    #[test]
    fn moving_events_in_and_copying_them_give_the_same_transition() {
        let events = [bid("a", T0, 1), bid("a", T0, 1), imp("a", T0 + MIN)];
        assert_eq!(
            apply_owned(&config(), None, events.clone()),
            apply(&config(), None, &events)
        );
    }

    #[test]
    fn an_impression_before_its_bid_counts_when_the_bid_arrives() {
        let (totals, _) = run(&[
            imp("a", T0),
            click("a", T0 + MIN),
            bid("a", T0 + 2 * MIN, 42),
        ]);
        assert_eq!(total(&totals), counts(1, 1, 1));
    }

    #[test]
    fn an_impression_beyond_the_bids_session_timeout_does_not_count() {
        let (totals, joined) = run(&[
            bid("a", T0, 1),
            imp("a", T0 + 5 * MIN + 1),
            click("a", T0 + 6 * MIN),
        ]);
        assert_eq!(total(&totals), counts(1, 0, 0));
        assert!(joined.is_empty());
        // Exactly at the timeout still joins.
        let (totals, _) = run(&[bid("b", T0, 1), imp("b", T0 + 5 * MIN)]);
        assert_eq!(total(&totals), counts(1, 1, 0));
    }

    #[test]
    fn a_click_after_the_clicks_session_timeout_does_not_count() {
        let (totals, _) = run(&[bid("a", T0, 1), imp("a", T0), click("a", T0 + 5 * MIN + 1)]);
        assert_eq!(total(&totals), counts(1, 1, 0));
    }

    #[test]
    fn a_click_without_a_joined_impression_does_not_count() {
        let (totals, _) = run(&[bid("a", T0, 1), click("a", T0)]);
        assert_eq!(total(&totals), counts(1, 0, 0));
        let (totals, _) = run(&[click("b", T0), imp("b", T0)]);
        assert_eq!(
            total(&totals),
            counts(0, 0, 0),
            "no bid, no campaign, nothing counts"
        );
    }

    #[test]
    fn the_same_event_posted_three_times_counts_once() {
        let b = bid("a", T0, 1);
        let i = imp("a", T0 + MIN);
        let (totals, joined) = run(&[
            b.clone(),
            b.clone(),
            i.clone(),
            b.clone(),
            i.clone(),
            i.clone(),
        ]);
        assert_eq!(total(&totals), counts(1, 1, 0));
        assert_eq!(joined.len(), 1);
        // Within one delivery too: the repeats are reported as duplicates.
        let t = apply(&config(), None, &[b.clone(), b.clone(), i.clone(), b, i]);
        assert_eq!((sum_of(&t.increments), t.duplicates), (counts(1, 1, 0), 3));
    }

    #[test]
    fn a_redelivered_batch_changes_nothing() {
        let batch = [bid("a", T0, 1), imp("a", T0), click("a", T0)];
        let first = apply(&config(), None, &batch);
        let state = first.state.clone();
        assert_eq!(sum_of(&first.increments), counts(1, 1, 1));
        let again = apply(&config(), Some(state.clone()), &batch);
        assert!(!again.changed, "nothing to commit");
        assert_eq!(again.state, state, "the unchanged state is handed back");
        assert!(again.increments.is_empty() && again.joined == 0);
        assert_eq!(again.read_version, state.version);
    }

    #[test]
    fn a_duplicate_then_a_joining_event_still_joins_when_the_caller_moves_its_state_in() {
        // Regression: a duplicate used to hand back no state, and a caller that had moved its
        // state in lost the bid, so the impression that followed never joined.
        let (totals, _) = run(&[bid("a", T0, 1), bid("a", T0, 1), imp("a", T0 + MIN)]);
        assert_eq!(total(&totals), counts(1, 1, 0));
    }

    #[test]
    fn a_second_event_of_a_type_is_ignored_even_if_it_would_have_joined() {
        // The first impression is too late to join; a later duplicate in time must not count.
        let (totals, _) = run(&[bid("a", T0, 1), imp("a", T0 + 9 * MIN), imp("a", T0 + MIN)]);
        assert_eq!(total(&totals), counts(1, 0, 0));
    }

    #[test]
    fn each_event_counts_in_the_window_of_its_own_event_time() {
        let (totals, _) = run(&[bid("a", T0 + 9 * MIN, 1), imp("a", T0 + 11 * MIN)]);
        let keys: Vec<i64> = totals.keys().map(|k| k.period).collect();
        assert_eq!(keys, [T0 / 1000, T0 / 1000 + 600]);
        assert_eq!(
            totals[&AggregateKey {
                campaign_item_id: 1,
                period: T0 / 1000
            }],
            counts(1, 0, 0)
        );
    }

    #[test]
    fn an_event_for_a_closed_window_corrects_that_window() {
        // A bid from an hour ago arrives now: it is counted in its own (closed) window.
        let late = bid("late", T0 - 60 * MIN, 1);
        let (totals, _) = run(&[bid("now", T0, 1), late]);
        let late_key = AggregateKey {
            campaign_item_id: 1,
            period: (T0 - 60 * MIN) / 1000,
        };
        assert_eq!(totals[&late_key], counts(1, 0, 0));
    }

    #[test]
    fn a_batch_of_one_transaction_commits_once_with_a_new_version_and_an_expiry() {
        let t = apply(&config(), None, &[bid("a", T0, 1), imp("a", T0)]);
        let state = t.state;
        assert_eq!((t.read_version, state.version), (0, 1));
        assert_eq!(
            state.counted,
            Counted {
                bid: true,
                impression: true,
                click: false
            }
        );
        assert_eq!(
            state.expires_at,
            T0 / 1000 + config().state_retention_seconds
        );
        let next = apply(&config(), Some(state), &[click("a", T0)]);
        assert_eq!((next.read_version, next.state.version), (1, 2));
    }

    #[test]
    fn state_expiry_is_anchored_on_receive_time_not_on_the_clients_event_time() {
        // A backfilled bid: its event time is ten days before it was received.
        let received = T0 + 10 * 24 * 60 * MIN;
        let backfilled = Event {
            received_at: received,
            ..bid("old", T0, 1)
        };
        let t = apply(&config(), None, &[backfilled]);
        // Kept for the retention after it was received, so a redelivery within it is recognised
        // (anchored on its `ts`, it was stored three days past its expiry).
        assert_eq!(
            t.state.expires_at,
            received / 1000 + config().state_retention_seconds
        );
    }

    #[test]
    fn aggregate_keys_are_the_windows_the_counted_events_were_added_to() {
        let config = config();
        let minute = 60_000;
        let events = [
            bid("t", 8 * minute, 7),
            imp("t", 11 * minute),
            click("t", 12 * minute),
        ];
        let transition = apply(&config, None, &events);
        let mut added: Vec<AggregateKey> = transition.increments.iter().map(|(k, _)| *k).collect();
        added.sort();
        assert_eq!(aggregate_keys(&config, &transition.state), added);
        assert_eq!(
            added.len(),
            2,
            "10-minute windows: the bid's, and the impression's and click's"
        );

        // An impression that did not count (beyond the session timeout) adds no key.
        let late = apply(&config, None, &[bid("u", 0, 7), imp("u", 999 * minute)]);
        assert_eq!(
            aggregate_keys(&config, &late.state),
            [AggregateKey {
                campaign_item_id: 7,
                period: 0
            }]
        );
        // Without a bid nothing has counted.
        let orphan = apply(&config, None, &[imp("v", 0)]);
        assert!(aggregate_keys(&config, &orphan.state).is_empty());
    }

    #[test]
    fn by_transaction_keeps_stream_order_within_a_tx_id() {
        let events = [imp("a", 2), bid("b", 1, 1), bid("a", 1, 1)];
        let groups = by_transaction(&events);
        let a: Vec<EventType> = groups["a"].iter().map(|e| e.event_type()).collect();
        assert_eq!(a, [EventType::Impression, EventType::Bid]);
        assert_eq!(groups.len(), 2);
    }

    #[test]
    fn the_state_record_round_trips_through_json() {
        let state = apply(&config(), None, &[bid("a", T0, 1), imp("a", T0)]).state;
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<Transaction>(&json).unwrap(), state);
    }
}
