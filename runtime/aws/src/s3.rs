//! The object-store port of `sdp-core` on an S3 bucket, with S3's conditional requests made
//! explicit: a read that costs nothing when the object is unchanged (`If-None-Match`), and writes
//! that succeed only if the object is still what the writer last saw (`If-Match`) or still absent
//! (`If-None-Match: *`).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use sdp_core::ports::{Fetched, Listed, Object, ObjectStore, Precondition, StoreError, Written};

use crate::error::{classify, permanent};

/// The bucket of a stack's lake.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: Client,
    bucket: String,
}

impl S3Objects {
    pub fn new(client: Client, bucket: impl Into<String>) -> S3Objects {
        S3Objects {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl ObjectStore for S3Objects {
    type ReadersHeld = ();

    fn location(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let mut found = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("S3 ListObjectsV2", e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                found.push(Listed {
                    key: key.to_owned(),
                    size: object
                        .size()
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0),
                    etag: object.e_tag().unwrap_or_default().to_owned(),
                    last_modified_ms: object
                        .last_modified()
                        .and_then(|t| t.to_millis().ok())
                        .unwrap_or(0),
                });
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    /// S3 sends no body for `Unchanged`.
    async fn get(&self, key: &str, known_etag: Option<&str>) -> Result<Fetched, StoreError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_none_match(known_etag.map(str::to_owned));
        let output = match request.send().await {
            Ok(output) => output,
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                if status == Some(304) {
                    return Ok(Fetched::Unchanged);
                }
                if err.as_service_error().is_some_and(|e| e.is_no_such_key()) || status == Some(404)
                {
                    return Ok(Fetched::Missing);
                }
                return Err(classify(&format!("S3 GetObject {key}"), err));
            }
        };
        let etag = output.e_tag().unwrap_or_default().to_owned();
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| permanent(format!("S3 GetObject {key}: reading the body failed: {e}")))?
            .to_vec();
        Ok(Fetched::Found(Object { bytes, etag }))
    }

    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        precondition: Precondition<'_>,
    ) -> Result<Written, StoreError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes));
        request = match precondition {
            Precondition::None => request,
            Precondition::Absent => request.if_none_match("*"),
            Precondition::Matches(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(output) => Ok(Written::Done(output.e_tag().unwrap_or_default().to_owned())),
            // 412: the condition failed; 409: a concurrent conditional write to the same key won.
            Err(err)
                if matches!(
                    err.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) =>
            {
                Ok(Written::Conflict)
            }
            Err(err) => Err(classify(&format!("S3 PutObject {key}"), err)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(&format!("S3 DeleteObject {key}"), e))?;
        Ok(())
    }

    async fn hold_readers(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::delete_object::DeleteObjectError;
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    /// S3's answer to a request rate it will not take, as AWS words it.
    fn slow_down() -> ErrorMetadata {
        ErrorMetadata::builder()
            .code("SlowDown")
            .message("Please reduce your request rate.")
            .build()
    }

    #[tokio::test]
    async fn slow_down_and_a_failed_delete_are_transient_so_the_run_is_tried_again() {
        let put = mock!(Client::put_object).then_error(|| PutObjectError::generic(slow_down()));
        let delete = mock!(Client::delete_object).then_error(|| {
            DeleteObjectError::generic(
                ErrorMetadata::builder()
                    .code("InternalError")
                    .message("We encountered an internal error. Please try again.")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&put, &delete]);
        let objects = S3Objects::new(client, "lake");

        let err = objects
            .put(
                "parquet/x",
                b"x".to_vec(),
                "application/octet-stream",
                Precondition::None,
            )
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(
            err.to_string()
                .contains("SlowDown: Please reduce your request rate."),
            "{err}"
        );

        let err = objects.delete("parquet/old").await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(
            err.to_string().contains("S3 DeleteObject parquet/old"),
            "{err}"
        );
    }
}
