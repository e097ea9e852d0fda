//! Test doubles shared by the handlers' tests.

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use sdp_core::events::Event;
use sdp_core::ports::{EventLog, StoreError};

/// Stores events in memory, or refuses them as configured.
#[derive(Default)]
pub struct Log {
    pub stored: Mutex<Vec<Event>>,
    pub refuse: Option<bool>, // Some(transient?)
    /// The number of events of each append, in order.
    pub append_sizes: Mutex<Vec<usize>>,
}

impl Log {
    pub fn appends(&self) -> Vec<usize> {
        self.append_sizes.lock().unwrap().clone()
    }
}

impl EventLog for Log {
    async fn append(&self, events: &[Event]) -> Result<(), StoreError> {
        match self.refuse {
            Some(true) => Err(StoreError::Transient {
                message: "throttled".into(),
                source: None,
            }),
            Some(false) => Err(StoreError::Permanent {
                message: "no such stream".into(),
                source: None,
            }),
            None => {
                self.append_sizes.lock().unwrap().push(events.len());
                self.stored.lock().unwrap().extend_from_slice(events);
                Ok(())
            }
        }
    }
}
