//! Processing a batch of the event stream, end to end: count it exactly once
//! (`sdp_core::processor`), then land what it changed in the lake (`sdp_core::landing`) through a
//! [`LakeSink`]. The processor Lambda runs it for each Kinesis batch, `sdp local`'s processor
//! thread for each batch of its log. The checkpoint that follows is the driver's: the event source
//! mapping moves on when the invocation succeeds; `sdp local` saves its log offset. Either way it
//! comes after the landing, so a crash in between lands the batch again (as exact rows, which
//! compaction drops) and counts nothing twice.

use sdp_core::events::Event;
use sdp_core::join::JoinConfig;
use sdp_core::landing::rows_after_commit;
use sdp_core::ports::{AggregateReader, LakeSink, StateStore};
use sdp_core::processor::{process_batch, BatchResult, ProcessError};

/// What a processed and landed batch did.
#[derive(Debug, Clone, Default)]
pub struct Processed {
    pub result: BatchResult,
    /// Rows landed besides the events.
    pub landed: usize,
}

/// Counts `events` (in stream order) into `store`, then lands the batch named `batch` in `lake`.
pub async fn process_and_land<S, L>(
    store: &S,
    lake: &L,
    config: &JoinConfig,
    batch: &str,
    events: Vec<Event>,
) -> Result<Processed, ProcessError>
where
    S: StateStore + AggregateReader + Sync,
    L: LakeSink + Sync,
{
    let result = process_batch(store, config, events.clone()).await?;
    let rows = rows_after_commit(store, config, &events)
        .await
        .map_err(ProcessError::Landing)?;
    lake.deliver(batch, &events, &rows)
        .await
        .map_err(ProcessError::Landing)?;
    Ok(Processed {
        result,
        landed: rows.len(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sdp_core::join::Counts;
    use sdp_core::memory::{ready, scenario, MemoryLake, MemoryState};

    /// Ten bids; every other one won, every fourth clicked.
    fn batch() -> Vec<Event> {
        scenario(10)
    }

    #[test]
    fn a_batch_whose_landing_failed_is_landed_by_its_retry_and_counted_once() {
        let (state, lake) = (MemoryState::default(), MemoryLake::default());
        let config = JoinConfig::from_minutes(10, 5, 5).unwrap();
        let expected = Counts {
            bids: 10,
            imps: 5,
            clicks: 3,
        };

        // Counted, then the landing fails (a Firehose outage): the driver does not checkpoint.
        lake.fail_next(1);
        let err = ready(process_and_land(&state, &lake, &config, "b1", batch())).unwrap_err();
        assert!(matches!(err, ProcessError::Landing(_)), "{err}");
        assert_eq!(state.totals(), expected);
        assert!(lake.rows().is_empty());

        // The retry of the same batch counts nothing again and lands every row it derives.
        let retried = ready(process_and_land(&state, &lake, &config, "b1", batch())).unwrap();
        assert_eq!(state.totals(), expected, "nothing counted twice");
        assert_eq!(retried.result.duplicates, batch().len());
        let joined = |dataset: &str| lake.rows().iter().filter(|r| r.dataset == dataset).count();
        assert_eq!((joined("impressions"), joined("clicks")), (5, 3));
        assert_eq!(lake.events().len(), batch().len());
    }
}
