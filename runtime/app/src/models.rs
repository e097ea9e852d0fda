//! The model store under the lake's `models/` prefix, on any [`ObjectStore`] (the S3 bucket, or
//! `sdp local`'s lake directory):
//!
//! - `models/current.json`: the serving model. Promotion is one conditional PUT of it, so the
//!   predict function sees the old model or the new one, never a mix, and two trainers racing
//!   cannot both promote: the second one's `If-Match` fails.
//! - `models/versions/<version>.json`: every promoted model, written before it is promoted; the
//!   newest [`KEEP`] are kept, so a bad promotion can be undone by copying one back.
//! - `models/last-run.json`: what the last training run saw and decided (the trainer's memory:
//!   it retrains only when new data has landed since).

use sdp_core::model::Model;
use sdp_core::ports::{Fetched, ObjectStore, Precondition, StoreError, Written};

/// Promoted versions kept.
pub const KEEP: usize = 5;

const JSON: &str = "application/json";

/// The model that serves before any is promoted: no information, every bid scores 0.5.
pub fn bootstrap() -> Model {
    Model::constant(0.5)
}

fn permanent(message: String) -> StoreError {
    StoreError::Permanent {
        message,
        source: None,
    }
}

#[derive(Debug, Clone)]
pub struct ModelStore<O> {
    objects: O,
    prefix: String,
}

/// The serving model as read.
#[derive(Debug)]
pub enum Serving {
    /// Unchanged since the ETag the reader gave.
    Unchanged,
    /// Nothing promoted yet: the bootstrap model serves.
    NoneYet,
    Model {
        model: Model,
        etag: String,
    },
}

/// How a promotion ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Promotion {
    Promoted {
        etag: String,
    },
    /// Another run promoted a model after this one read the serving model; this one stands down.
    Superseded,
}

impl<O: ObjectStore> ModelStore<O> {
    /// The store under `prefix` (`models/`) of `objects`.
    pub fn new(objects: O, prefix: impl Into<String>) -> ModelStore<O> {
        ModelStore {
            objects,
            prefix: prefix.into(),
        }
    }

    pub fn current_key(&self) -> String {
        format!("{}current.json", self.prefix)
    }

    pub fn version_key(&self, version: &str) -> String {
        format!("{}versions/{version}.json", self.prefix)
    }

    pub fn last_run_key(&self) -> String {
        format!("{}last-run.json", self.prefix)
    }

    /// The serving model; `Unchanged` if it still has `known_etag`. A file that is not a valid
    /// model, or uses a feature not known at bid time, is an error: it must not serve.
    pub async fn serving(&self, known_etag: Option<&str>) -> Result<Serving, StoreError> {
        let key = self.current_key();
        match self.objects.get(&key, known_etag).await? {
            Fetched::Unchanged => Ok(Serving::Unchanged),
            Fetched::Missing => Ok(Serving::NoneYet),
            Fetched::Found(object) => {
                let model: Model = serde_json::from_slice(&object.bytes).map_err(|e| {
                    permanent(format!(
                        "{}/{key} is not a model file: {e}",
                        self.objects.location()
                    ))
                })?;
                model.check().map_err(|e| {
                    permanent(format!(
                        "{}/{key} must not serve: {e}",
                        self.objects.location()
                    ))
                })?;
                Ok(Serving::Model {
                    model,
                    etag: object.etag,
                })
            }
        }
    }

    /// Stores `model` as a version, then makes it the serving model if the serving model is still
    /// the one with `replacing` (None: none was promoted yet). Older versions beyond [`KEEP`] are
    /// removed only after the promotion is written.
    pub async fn promote(
        &self,
        model: &Model,
        replacing: Option<&str>,
    ) -> Result<Promotion, StoreError> {
        let bytes = serde_json::to_vec(model)
            .map_err(|e| permanent(format!("serialising model {} failed: {e}", model.version)))?;
        let version_key = self.version_key(&model.version);
        self.objects
            .put(&version_key, bytes.clone(), JSON, Precondition::None)
            .await?;
        sdp_core::crash::point("promotion.after_version");
        let condition = replacing.map_or(Precondition::Absent, Precondition::Matches);
        let etag = match self
            .objects
            .put(&self.current_key(), bytes, JSON, condition)
            .await?
        {
            Written::Done(etag) => etag,
            Written::Conflict => return Ok(Promotion::Superseded),
        };
        sdp_core::crash::point("promotion.after_current");
        self.prune(&version_key).await?;
        Ok(Promotion::Promoted { etag })
    }

    /// Removes all but the newest [`KEEP`] versions (names sort by promotion time), never `keep`.
    async fn prune(&self, keep: &str) -> Result<(), StoreError> {
        let versions = self
            .objects
            .list(&format!("{}versions/", self.prefix))
            .await?;
        let surplus = versions.len().saturating_sub(KEEP);
        for old in versions.iter().take(surplus).filter(|v| v.key != keep) {
            self.objects.delete(&old.key).await?;
        }
        Ok(())
    }

    /// The promoted versions, oldest first.
    pub async fn versions(&self) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{}versions/", self.prefix);
        Ok(self
            .objects
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|o| {
                o.key
                    .strip_prefix(&prefix)
                    .and_then(|k| k.strip_suffix(".json"))
                    .map(str::to_owned)
            })
            .collect())
    }

    /// The record of the last training run, if any.
    pub async fn last_run(&self) -> Result<Option<serde_json::Value>, StoreError> {
        let key = self.last_run_key();
        match self.objects.get(&key, None).await? {
            Fetched::Found(object) => serde_json::from_slice(&object.bytes)
                .map(Some)
                .map_err(|e| permanent(format!("{key} is not JSON: {e}"))),
            Fetched::Missing | Fetched::Unchanged => Ok(None),
        }
    }

    pub async fn record_run(&self, record: &serde_json::Value) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| permanent(format!("serialising the run record failed: {e}")))?;
        self.objects
            .put(&self.last_run_key(), bytes, JSON, Precondition::None)
            .await?;
        Ok(())
    }
}
