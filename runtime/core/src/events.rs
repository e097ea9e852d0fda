//! The event contract of the ingestion API (CONTRACT.md §4.1): which events exist, the route each
//! is posted to, and the `type` tag the server stamps on it.

use serde::Serialize;

/// The kinds of event the platform ingests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EventType {
    Bid,
    Impression,
    Click,
}

impl EventType {
    pub const ALL: [EventType; 3] = [EventType::Bid, EventType::Impression, EventType::Click];

    /// The path segment clients post this event to: `POST {UrlForAPI}/impression`.
    pub fn route(self) -> &'static str {
        match self {
            EventType::Bid => "bid",
            EventType::Impression => "impression",
            EventType::Click => "click",
        }
    }

    /// The `type` the server stamps on the stored event (the original's values).
    pub fn tag(self) -> &'static str {
        match self {
            EventType::Bid => "bid",
            EventType::Impression => "imp",
            EventType::Click => "click",
        }
    }

    /// The event type whose `type` tag is `tag`, if any.
    pub fn from_tag(tag: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.tag() == tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_tags_keep_the_original_contract() {
        let pairs: Vec<(&str, &str)> = EventType::ALL
            .iter()
            .map(|t| (t.route(), t.tag()))
            .collect();
        assert_eq!(
            pairs,
            [("bid", "bid"), ("impression", "imp"), ("click", "click")]
        );
    }

    #[test]
    fn a_tag_maps_back_to_its_type_and_unknown_tags_to_none() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_tag(t.tag()), Some(t));
        }
        assert_eq!(EventType::from_tag("impression"), None);
    }
}
