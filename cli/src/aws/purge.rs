//! Deleting the data a stack keeps on deletion (`sdp destroy --purge-data`).

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::describe;

/// Empties `bucket` (every object version and delete marker, 1000 at a time, as DeleteObjects
/// takes) and deletes it. Returns how many versions were deleted.
pub async fn delete_bucket(config: &SdkConfig, bucket: &str) -> Result<usize> {
    let s3 = super::s3_client(config);
    let mut deleted = 0;
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(1000)
            .send()
            .await
            .map_err(|e| describe(&format!("S3 ListObjectVersions `{bucket}`"), &e))?;
        let objects: Vec<ObjectIdentifier> = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key?)
                    .set_version_id(version.map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        if objects.is_empty() {
            break;
        }
        let count = objects.len();
        let result = s3
            .delete_objects()
            .bucket(bucket)
            .delete(
                Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()
                    .context("building DeleteObjects")?,
            )
            .send()
            .await
            .map_err(|e| describe(&format!("S3 DeleteObjects `{bucket}`"), &e))?;
        if let Some(error) = result.errors().first() {
            anyhow::bail!(
                "S3 DeleteObjects `{bucket}` failed for `{}`: {}: {}",
                error.key().unwrap_or_default(),
                error.code().unwrap_or_default(),
                error.message().unwrap_or_default()
            );
        }
        deleted += count;
    }
    s3.delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| describe(&format!("S3 DeleteBucket `{bucket}`"), &e))?;
    Ok(deleted)
}

pub async fn delete_table(config: &SdkConfig, table: &str) -> Result<()> {
    aws_sdk_dynamodb::Client::new(config)
        .delete_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| describe(&format!("DynamoDB DeleteTable `{table}`"), &e))?;
    Ok(())
}

/// Schedules the key's deletion after the shortest waiting period KMS allows (7 days).
pub async fn schedule_key_deletion(config: &SdkConfig, key: &str) -> Result<()> {
    aws_sdk_kms::Client::new(config)
        .schedule_key_deletion()
        .key_id(key)
        .pending_window_in_days(7)
        .send()
        .await
        .map_err(|e| describe(&format!("KMS ScheduleKeyDeletion `{key}`"), &e))?;
    Ok(())
}
