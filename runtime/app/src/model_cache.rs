//! The serving model of the predictions API (the predict Lambda's, and `sdp local`'s): read from
//! the model store once, then kept, and checked for a newer promotion at most every `refresh` with
//! a conditional GET (`If-None-Match`: an unchanged model costs a 304 and no body on S3). Until a
//! model is promoted the bootstrap serves, so predictions answer from the first request after
//! deploy. If the store fails, the model in hand keeps serving: a stale model is better than no
//! answer, and the error is logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use sdp_core::model::Model;
use sdp_core::ports::ObjectStore;

use crate::models::{bootstrap, ModelStore, Serving};

pub struct ModelCache<O> {
    store: ModelStore<O>,
    refresh: Duration,
    state: Mutex<State>,
}

struct State {
    model: Arc<Model>,
    etag: Option<String>,
    checked: Option<Instant>,
}

impl<O: ObjectStore> ModelCache<O> {
    pub fn new(store: ModelStore<O>, refresh: Duration) -> ModelCache<O> {
        ModelCache {
            store,
            refresh,
            state: Mutex::new(State {
                model: Arc::new(bootstrap()),
                etag: None,
                checked: None,
            }),
        }
    }

    /// The model to answer with now.
    pub async fn model(&self) -> Arc<Model> {
        let mut state = self.state.lock().await;
        if state.checked.is_some_and(|at| at.elapsed() < self.refresh) {
            return Arc::clone(&state.model);
        }
        match self.store.serving(state.etag.as_deref()).await {
            Ok(Serving::Unchanged) => {}
            Ok(Serving::NoneYet) => {
                state.model = Arc::new(bootstrap());
                state.etag = None;
            }
            Ok(Serving::Model { model, etag }) => {
                tracing::info!(version = %model.version, "serving model loaded");
                state.model = Arc::new(model);
                state.etag = Some(etag);
            }
            Err(err) => tracing::error!(
                error = %sdp_core::ports::with_causes(&err),
                serving = %state.model.version,
                "could not check for a newer model; the one in hand keeps serving"
            ),
        }
        state.checked = Some(Instant::now());
        Arc::clone(&state.model)
    }
}
