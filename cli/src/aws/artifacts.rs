//! The per-account, per-region artifact bucket: function zips and templates, keyed by content.
//! Created on first use, private and encrypted; every call names the expected owner, so a bucket
//! of the same name in another account is never written to.

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, ObjectOwnership, OwnershipControls,
    OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use aws_sdk_s3::Client;

use super::describe;

/// The artifact bucket of one account and region.
pub struct ArtifactBucket {
    client: Client,
    pub name: String,
    account: String,
    region: String,
    /// Whether S3 is reached over TLS (always, on AWS). A TLS-only policy on a bucket reached
    /// through a plain-HTTP endpoint (an emulator) would deny the deployer itself.
    tls: bool,
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// The object was already there (same key, same content): nothing sent.
    AlreadyThere,
    Uploaded {
        bytes: usize,
    },
}

impl ArtifactBucket {
    pub fn new(config: &SdkConfig, account: &str, region: &str) -> ArtifactBucket {
        // Over an endpoint override (an emulator or a proxy), TLS only if it says https.
        let tls = super::s3_endpoint_override().is_none_or(|url| url.starts_with("https://"));
        let client = super::s3_client(config);
        ArtifactBucket {
            client,
            name: format!("sdp-artifacts-{account}-{region}"),
            account: account.to_owned(),
            region: region.to_owned(),
            tls,
        }
    }

    /// Creates the bucket unless it exists: encrypted, public access blocked, owner-enforced,
    /// TLS-only. Returns whether it was created.
    pub async fn ensure(&self) -> Result<bool> {
        let head = self
            .client
            .head_bucket()
            .bucket(&self.name)
            .expected_bucket_owner(&self.account)
            .send()
            .await;
        match head {
            Ok(_) => return Ok(false),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {}
            Err(err) => return Err(describe(&format!("S3 HeadBucket `{}`", self.name), &err)),
        }
        // S3 refuses a location constraint for us-east-1 and requires one everywhere else.
        let location = (self.region != "us-east-1").then(|| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                .build()
        });
        self.client
            .create_bucket()
            .bucket(&self.name)
            .set_create_bucket_configuration(location)
            .object_ownership(ObjectOwnership::BucketOwnerEnforced)
            .send()
            .await
            .map_err(|e| describe(&format!("S3 CreateBucket `{}`", self.name), &e))?;
        self.secure().await?;
        Ok(true)
    }

    async fn secure(&self) -> Result<()> {
        let encryption = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(ServerSideEncryption::Aes256)
                            .build()
                            .context("building the encryption rule")?,
                    )
                    .build(),
            )
            .build()
            .context("building the encryption configuration")?;
        self.client
            .put_bucket_encryption()
            .bucket(&self.name)
            .expected_bucket_owner(&self.account)
            .server_side_encryption_configuration(encryption)
            .send()
            .await
            .map_err(|e| describe("S3 PutBucketEncryption", &e))?;
        self.client
            .put_public_access_block()
            .bucket(&self.name)
            .expected_bucket_owner(&self.account)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .block_public_policy(true)
                    .ignore_public_acls(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| describe("S3 PutPublicAccessBlock", &e))?;
        self.client
            .put_bucket_ownership_controls()
            .bucket(&self.name)
            .expected_bucket_owner(&self.account)
            .ownership_controls(
                OwnershipControls::builder()
                    .rules(
                        OwnershipControlsRule::builder()
                            .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                            .build()
                            .context("building the ownership rule")?,
                    )
                    .build()
                    .context("building the ownership controls")?,
            )
            .send()
            .await
            .map_err(|e| describe("S3 PutBucketOwnershipControls", &e))?;
        if !self.tls {
            eprintln!("warning: S3 is reached over plain HTTP here, so the artifact bucket gets no TLS-only policy");
            return Ok(());
        }
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [format!("arn:aws:s3:::{}", self.name), format!("arn:aws:s3:::{}/*", self.name)],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}
            }]
        });
        self.client
            .put_bucket_policy()
            .bucket(&self.name)
            .expected_bucket_owner(&self.account)
            .policy(policy.to_string())
            .send()
            .await
            .map_err(|e| describe("S3 PutBucketPolicy", &e))?;
        Ok(())
    }

    /// Uploads `body` under `key` unless an object is already there. Keys are content hashes, so
    /// an existing object is the same bytes.
    pub async fn upload(&self, key: &str, body: &[u8]) -> Result<Upload> {
        self.upload_with(key, || Ok(body.to_vec())).await
    }

    /// As [`upload`](Self::upload), building the body only when it must be sent.
    pub async fn upload_with(
        &self,
        key: &str,
        body: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Upload> {
        let head = self
            .client
            .head_object()
            .bucket(&self.name)
            .key(key)
            .expected_bucket_owner(&self.account)
            .send()
            .await;
        match head {
            Ok(_) => return Ok(Upload::AlreadyThere),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {}
            Err(err) => return Err(describe(&format!("S3 HeadObject `{key}`"), &err)),
        }
        let body = body()?;
        let bytes = body.len();
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .expected_bucket_owner(&self.account)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| describe(&format!("S3 PutObject `{key}`"), &e))?;
        Ok(Upload::Uploaded { bytes })
    }

    /// The URL CloudFormation reads a template from.
    pub fn template_url(&self, key: &str) -> String {
        format!(
            "https://{}.s3.{}.amazonaws.com/{key}",
            self.name, self.region
        )
    }
}
