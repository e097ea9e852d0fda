//! Campaign reports (CONTRACT.md §4.2): lifetime totals, and totals per calendar period in an
//! IANA time zone. Inputs are the stored aggregates of one campaign; parsing of the request's
//! path and query lives here too, so every front end (Lambda, `sdp local`) answers alike.

use std::collections::BTreeMap;

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::Serialize;

use crate::join::Counts;

/// One stored aggregate of a campaign: a window start (epoch seconds) and its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCounts {
    pub period: i64,
    pub counts: Counts,
}

/// The lifetime totals of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub campaign_item_id: i64,
    pub bids: i64,
    pub imps: i64,
    pub clicks: i64,
}

/// The totals of one calendar period; `period` is its start, epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PeriodTotals {
    pub campaign_item_id: i64,
    pub period: i64,
    pub bids: i64,
    pub imps: i64,
    pub clicks: i64,
}

/// A calendar unit to group by; the names are the original API's (Java `ChronoUnit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

impl Unit {
    const NAMES: [(&'static str, Unit); 6] = [
        ("MINUTES", Unit::Minutes),
        ("HOURS", Unit::Hours),
        ("DAYS", Unit::Days),
        ("WEEKS", Unit::Weeks),
        ("MONTHS", Unit::Months),
        ("YEARS", Unit::Years),
    ];
}

/// A report request that cannot be answered; `parameter` names the culprit (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub parameter: &'static str,
    pub message: String,
}

fn bad(parameter: &'static str, message: String) -> QueryError {
    QueryError { parameter, message }
}

/// The parsed query of `GET /reports/campaigns/{id}/period`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodQuery {
    pub unit: Unit,
    pub time_zone: TimeZone,
    /// Inclusive bounds on the stored window start, epoch seconds.
    pub from: i64,
    pub to: i64,
    pub descending: bool,
}

/// Parses the campaign id of the path.
pub fn parse_campaign_id(text: &str) -> Result<i64, QueryError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| {
            bad(
                "campaign_item_id",
                format!("`campaign_item_id` must be a non-negative integer; got `{text}`"),
            )
        })
}

/// Parses the query parameters (`period`, `timezone`, `from`, `to`, `desc`); `now` (epoch
/// seconds) is the default of `to`. Unknown parameters are ignored.
pub fn parse_period_query<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    now: i64,
) -> Result<PeriodQuery, QueryError> {
    let params: BTreeMap<&str, &str> = params.into_iter().collect();
    let unit = match params.get("period") {
        None => Unit::Days,
        Some(name) => Unit::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, unit)| *unit)
            .ok_or_else(|| {
                let names: Vec<&str> = Unit::NAMES.iter().map(|(n, _)| *n).collect();
                bad(
                    "period",
                    format!("`period` must be one of {}; got `{name}`", names.join(", ")),
                )
            })?,
    };
    let time_zone = match params.get("timezone") {
        None => TimeZone::UTC,
        Some(name) => TimeZone::get(name).map_err(|_| {
            bad(
                "timezone",
                format!("`timezone` must be an IANA time zone such as Europe/Berlin; got `{name}`"),
            )
        })?,
    };
    let seconds = |name: &'static str, default: i64| -> Result<i64, QueryError> {
        params.get(name).map_or(Ok(default), |text| {
            text.parse::<i64>().map_err(|_| {
                bad(
                    name,
                    format!("`{name}` must be epoch seconds (an integer); got `{text}`"),
                )
            })
        })
    };
    let from = seconds("from", 0)?;
    let to = seconds("to", now)?;
    if from > to {
        return Err(bad("from", format!("`from` ({from}) is after `to` ({to})")));
    }
    let descending = match params.get("desc").copied() {
        None => true,
        Some(text) if text.eq_ignore_ascii_case("true") => true,
        Some(text) if text.eq_ignore_ascii_case("false") => false,
        Some(text) => {
            return Err(bad(
                "desc",
                format!("`desc` must be true or false; got `{text}`"),
            ))
        }
    };
    Ok(PeriodQuery {
        unit,
        time_zone,
        from,
        to,
        descending,
    })
}

/// The lifetime totals of a campaign; zeros for a campaign with no data.
pub fn totals(campaign_item_id: i64, rows: &[WindowCounts]) -> Totals {
    let mut sum = Counts::default();
    rows.iter().for_each(|r| sum.add(r.counts));
    Totals {
        campaign_item_id,
        bids: sum.bids,
        imps: sum.imps,
        clicks: sum.clicks,
    }
}

/// The totals per calendar period of `query`, over the windows whose start is in `from..=to`.
pub fn by_period(
    campaign_item_id: i64,
    rows: &[WindowCounts],
    query: &PeriodQuery,
) -> Vec<PeriodTotals> {
    let mut buckets: BTreeMap<i64, Counts> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| (query.from..=query.to).contains(&r.period))
    {
        let start = bucket_start(row.period, query.unit, &query.time_zone);
        buckets.entry(start).or_default().add(row.counts);
    }
    let rows = buckets.into_iter().map(|(period, c)| PeriodTotals {
        campaign_item_id,
        period,
        bids: c.bids,
        imps: c.imps,
        clicks: c.clicks,
    });
    if query.descending {
        rows.rev().collect()
    } else {
        rows.collect()
    }
}

/// The start (epoch seconds) of the `unit` holding `seconds`, on the calendar of `zone`.
pub fn bucket_start(seconds: i64, unit: Unit, zone: &TimeZone) -> i64 {
    let Ok(instant) = Timestamp::from_second(seconds) else {
        return seconds;
    };
    let local = instant.to_zoned(zone.clone());
    match unit {
        // Minutes and hours are cut on the instant's own UTC offset: in the repeated hour of a
        // DST change each instant stays in its own hour, which a civil-time round trip would not.
        Unit::Minutes => truncate_on_offset(&local, 60),
        Unit::Hours => truncate_on_offset(&local, 3600),
        Unit::Days => start_of_day(&local, 0),
        Unit::Weeks => {
            let back = i64::from(local.weekday().since(Weekday::Monday));
            start_of_day(&local, back)
        }
        Unit::Months => start_of_day(&local, i64::from(local.day()) - 1),
        Unit::Years => start_of_day(&local, i64::from(local.day_of_year()) - 1),
    }
}

fn truncate_on_offset(local: &Zoned, unit_seconds: i64) -> i64 {
    let seconds = local.timestamp().as_second();
    let offset = i64::from(local.offset().seconds());
    seconds - (seconds + offset).rem_euclid(unit_seconds)
}

/// The start of the day `days_back` days before `local`'s date, in its zone (a day may begin at
/// 01:00 where DST starts at midnight; jiff resolves that).
fn start_of_day(local: &Zoned, days_back: i64) -> i64 {
    let date = local
        .date()
        .checked_sub(jiff::Span::new().days(days_back))
        .unwrap_or(local.date());
    date.to_zoned(local.time_zone().clone())
        .map(|z| z.timestamp().as_second())
        .unwrap_or_else(|_| local.timestamp().as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(period: i64, bids: i64) -> WindowCounts {
        WindowCounts {
            period,
            counts: Counts {
                bids,
                imps: 0,
                clicks: 0,
            },
        }
    }

    fn query(params: &[(&str, &str)]) -> Result<PeriodQuery, QueryError> {
        parse_period_query(params.iter().copied(), 2_000_000_000)
    }

    fn ts(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_second()
    }

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    #[test]
    fn totals_sum_every_window_and_a_campaign_without_data_is_zeros() {
        let rows = [row(0, 2), row(600, 3)];
        assert_eq!(
            totals(7, &rows),
            Totals {
                campaign_item_id: 7,
                bids: 5,
                imps: 0,
                clicks: 0
            }
        );
        assert_eq!(
            totals(8, &[]),
            Totals {
                campaign_item_id: 8,
                bids: 0,
                imps: 0,
                clicks: 0
            }
        );
    }

    #[test]
    fn totals_serialize_with_the_contract_keys() {
        let json = serde_json::to_string(&totals(1_463_517, &[])).unwrap();
        assert_eq!(
            json,
            r#"{"campaign_item_id":1463517,"bids":0,"imps":0,"clicks":0}"#
        );
    }

    #[test]
    fn defaults_are_days_utc_from_zero_to_now_descending() {
        let q = query(&[]).unwrap();
        assert_eq!(
            (q.unit, q.from, q.to, q.descending),
            (Unit::Days, 0, 2_000_000_000, true)
        );
        assert_eq!(q.time_zone, TimeZone::UTC);
    }

    #[test]
    fn each_bad_parameter_is_named_with_the_reason() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("period", "DECADES")], "period"),
            (&[("timezone", "Mars/Olympus")], "timezone"),
            (&[("from", "yesterday")], "from"),
            (&[("to", "1.5")], "to"),
            (&[("desc", "maybe")], "desc"),
            (&[("from", "10"), ("to", "5")], "from"),
        ];
        for (params, parameter) in cases {
            let err = query(params).unwrap_err();
            assert_eq!(err.parameter, parameter, "{params:?}: {err}");
        }
        assert_eq!(
            query(&[("period", "DECADES")]).unwrap_err().message,
            "`period` must be one of MINUTES, HOURS, DAYS, WEEKS, MONTHS, YEARS; got `DECADES`"
        );
    }

    #[test]
    fn desc_false_is_honoured_unlike_the_original() {
        assert!(!query(&[("desc", "false")]).unwrap().descending);
        let q = query(&[("desc", "false"), ("period", "HOURS")]).unwrap();
        let rows = by_period(1, &[row(7200, 1), row(0, 1)], &q);
        assert_eq!(rows.iter().map(|r| r.period).collect::<Vec<_>>(), [0, 7200]);
    }

    #[test]
    fn campaign_ids_must_be_non_negative_integers() {
        assert_eq!(parse_campaign_id("1463517"), Ok(1_463_517));
        for text in ["abc", "-1", "1.0", ""] {
            assert_eq!(
                parse_campaign_id(text).unwrap_err().parameter,
                "campaign_item_id"
            );
        }
    }

    #[test]
    fn the_originals_days_grouping_example_holds() {
        // ORIGINAL.md §7.1: 1546068600 → 1546041600 in UTC.
        assert_eq!(
            bucket_start(1_546_068_600, Unit::Days, &TimeZone::UTC),
            1_546_041_600
        );
    }

    #[test]
    fn windows_group_into_days_of_the_requested_zone_and_filter_inclusively() {
        let q = query(&[
            ("timezone", "Europe/Berlin"),
            ("from", "1000"),
            ("to", "90000"),
        ])
        .unwrap();
        // 1970-01-01 in Berlin is UTC+1: its day starts at -3600.
        let rows = by_period(
            1,
            &[
                row(0, 9),
                row(1000, 1),
                row(82_800, 2),
                row(90_000, 4),
                row(90_001, 8),
            ],
            &q,
        );
        let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.period, r.bids)).collect();
        assert_eq!(got, [(82_800, 6), (-3600, 1)]);
    }

    #[test]
    fn day_buckets_follow_a_dst_change_in_the_requested_zone() {
        // Europe/Berlin springs forward on 2026-03-29: that day has 23 hours.
        let day = |t: &str| bucket_start(ts(t), Unit::Days, &berlin());
        assert_eq!(day("2026-03-29T10:00:00Z"), ts("2026-03-28T23:00:00Z"));
        assert_eq!(day("2026-03-30T10:00:00Z"), ts("2026-03-29T22:00:00Z"));
        // And falls back on 2026-10-25: that day has 25 hours.
        assert_eq!(day("2026-10-25T22:59:59Z"), ts("2026-10-24T22:00:00Z"));
        assert_eq!(day("2026-10-25T23:00:00Z"), ts("2026-10-25T23:00:00Z"));
    }

    #[test]
    fn the_repeated_hour_of_a_fall_back_is_two_hour_buckets() {
        // 02:00-03:00 happens twice in Berlin on 2026-10-25 (00:00Z at +02:00, 01:00Z at +01:00).
        let hour = |t: &str| bucket_start(ts(t), Unit::Hours, &berlin());
        assert_eq!(hour("2026-10-25T00:30:00Z"), ts("2026-10-25T00:00:00Z"));
        assert_eq!(hour("2026-10-25T01:30:00Z"), ts("2026-10-25T01:00:00Z"));
    }

    #[test]
    fn hours_follow_half_hour_offsets() {
        let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
        assert_eq!(
            bucket_start(ts("2026-01-01T10:10:00Z"), Unit::Hours, &kolkata),
            ts("2026-01-01T09:30:00Z")
        );
    }

    #[test]
    fn weeks_start_on_monday_months_on_the_first_and_years_on_january_first() {
        let utc = TimeZone::UTC;
        // 2026-11-22 is a Sunday.
        assert_eq!(
            bucket_start(ts("2026-11-22T12:00:00Z"), Unit::Weeks, &utc),
            ts("2026-11-16T00:00:00Z")
        );
        assert_eq!(
            bucket_start(ts("2026-11-16T00:00:00Z"), Unit::Weeks, &utc),
            ts("2026-11-16T00:00:00Z")
        );
        assert_eq!(
            bucket_start(ts("2026-11-22T12:00:00Z"), Unit::Months, &utc),
            ts("2026-11-01T00:00:00Z")
        );
        assert_eq!(
            bucket_start(ts("2026-11-22T12:00:00Z"), Unit::Years, &utc),
            ts("2026-01-01T00:00:00Z")
        );
        // A week that crosses the Berlin spring-forward still starts at Monday midnight local.
        assert_eq!(
            bucket_start(ts("2026-03-29T12:00:00Z"), Unit::Weeks, &berlin()),
            ts("2026-03-22T23:00:00Z")
        );
    }

    #[test]
    fn period_rows_serialize_with_the_contract_keys() {
        let q = query(&[]).unwrap();
        let json = serde_json::to_string(&by_period(3, &[row(86_400, 1)], &q)).unwrap();
        assert_eq!(
            json,
            r#"[{"campaign_item_id":3,"period":86400,"bids":1,"imps":0,"clicks":0}]"#
        );
    }
}
