//! Event-time tumbling windows: `AggregationPeriod` minutes long, aligned to the epoch in UTC
//! (CONTRACT.md §5.1), and the lake's partition of an event time (date and hour, UTC).

use jiff::Timestamp;

/// The length of the aggregation windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLength {
    seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the aggregation period must be 1 to 1440 minutes; got {0}")]
pub struct InvalidWindowLength(pub i64);

impl WindowLength {
    pub fn from_minutes(minutes: i64) -> Result<WindowLength, InvalidWindowLength> {
        if (1..=1440).contains(&minutes) {
            Ok(WindowLength {
                seconds: minutes * 60,
            })
        } else {
            Err(InvalidWindowLength(minutes))
        }
    }

    /// The start (epoch seconds) of the window holding the event time `ts_ms` (epoch ms).
    pub fn start_of(self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(1000).div_euclid(self.seconds) * self.seconds
    }
}

/// A window start as the lake stores it: `yyyy-MM-dd HH:mm:ss.SSS`, UTC.
pub fn format_period(start_seconds: i64) -> String {
    match Timestamp::from_second(start_seconds) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S.000").to_string(),
        // Outside jiff's range (±9999 years): unreachable for validated events; keep the number.
        Err(_) => start_seconds.to_string(),
    }
}

/// The lake partition (`dt`, `hour`) of an event time in epoch ms, UTC.
pub fn partition_of(ts_ms: i64) -> (String, String) {
    match Timestamp::from_millisecond(ts_ms) {
        Ok(t) => (
            t.strftime("%Y-%m-%d").to_string(),
            t.strftime("%H").to_string(),
        ),
        Err(_) => ("1970-01-01".to_owned(), "00".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: fn() -> WindowLength = || WindowLength::from_minutes(10).unwrap();

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        // 2019-05-05 12:17:31.250 UTC lies in the window starting 12:10:00.
        let ts = 1_557_058_651_250;
        assert_eq!(format_period(TEN().start_of(ts)), "2019-05-05 12:10:00.000");
        assert_eq!(TEN().start_of(ts) % 600, 0);
    }

    #[test]
    fn a_window_includes_its_start_and_excludes_its_end() {
        let start_ms = 1_557_058_200_000; // 12:10:00.000
        assert_eq!(TEN().start_of(start_ms) * 1000, start_ms);
        assert_eq!(TEN().start_of(start_ms + 599_999) * 1000, start_ms);
        assert_eq!(
            TEN().start_of(start_ms + 600_000) * 1000,
            start_ms + 600_000
        );
    }

    #[test]
    fn the_aggregation_period_must_be_1_to_1440_minutes() {
        assert!(WindowLength::from_minutes(0).is_err());
        assert!(WindowLength::from_minutes(1441).is_err());
        assert!(WindowLength::from_minutes(1440).is_ok());
    }

    #[test]
    fn the_partition_is_the_utc_date_and_hour_of_the_event_time() {
        assert_eq!(
            partition_of(1_557_058_651_250),
            ("2019-05-05".into(), "12".into())
        );
        assert_eq!(
            partition_of(1_557_014_399_999),
            ("2019-05-04".into(), "23".into())
        );
    }
}
