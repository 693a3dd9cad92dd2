//! The artifact bucket: found or created hardened, every call made only to a bucket this
//! account owns (`ExpectedBucketOwner`: the default name is predictable, so another
//! account could create it first and receive the code), objects stored under their
//! content hash and reused only when S3's stored checksum proves the content, and a
//! destroy that removes this stack's objects only.
//!
//! Keys: `<stack>/function/<sha256>.zip` and `<stack>/template/<sha256>.json`. Other
//! stacks of the account share the bucket, and CloudFormation reads a stack's previous
//! code from it when it rolls back.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    BucketVersioningStatus, ChecksumAlgorithm, ChecksumMode, CreateBucketConfiguration, Delete,
    ExpirationStatus, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectIdentifier,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};
use sha2::{Digest, Sha256};

use crate::aws::{self, Aws};
use crate::error::{Error, Result};

/// The default bucket name: one per account and region, so every stack there shares it.
pub fn default_name(account: &str, region: &str) -> String {
    format!("openai-lambda-proxy-{account}-{region}")
}

/// Where this stack's objects live in the shared bucket.
pub fn stack_prefix(stack: &str) -> String {
    format!("{stack}/")
}

pub fn function_key(stack: &str, sha256_hex: &str) -> String {
    format!("{}function/{sha256_hex}.zip", stack_prefix(stack))
}

pub fn template_key(stack: &str, sha256_hex: &str) -> String {
    format!("{}template/{sha256_hex}.json", stack_prefix(stack))
}

/// The object's URL as CloudFormation's `TemplateURL` takes it (virtual-hosted style).
pub fn url(aws: &Aws, bucket: &str, key: &str) -> String {
    format!("https://{bucket}.s3.{}.amazonaws.com/{key}", aws.region)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    /// The account that must own it: every call says so.
    pub owner: String,
    pub created: bool,
}

/// The bucket, if it exists and is this account's; an error if another account owns it.
pub async fn find(aws: &Aws, configured: Option<&str>, account: &str) -> Result<Option<Bucket>> {
    let name = configured.map_or_else(|| default_name(account, &aws.region), str::to_owned);
    match aws
        .s3
        .head_bucket()
        .bucket(&name)
        .expected_bucket_owner(account)
        .send()
        .await
    {
        Ok(_) => Ok(Some(Bucket {
            name,
            owner: account.to_owned(),
            created: false,
        })),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => Err(Error::new(
            format!(
                "artifact bucket {name} exists but this account ({account}) does not own it or may not read it"
            ),
            if configured.is_some() {
                "set ARTIFACT_BUCKET to a bucket of this account (the deploying role needs s3:ListBucket on it)".to_owned()
            } else {
                "another account holds the default name: set ARTIFACT_BUCKET to a bucket of this account"
                    .to_owned()
            },
        )),
        Err(e) => Err(Error::aws(format_args!("check artifact bucket {name}"), &e)),
    }
}

/// Finds the bucket, or creates and hardens the default one. A bucket the deployer
/// created but could not harden is deleted again, never left open.
pub async fn ensure(aws: &Aws, configured: Option<&str>, account: &str) -> Result<Bucket> {
    if let Some(found) = find(aws, configured, account).await? {
        return Ok(found);
    }
    let name = configured.map_or_else(|| default_name(account, &aws.region), str::to_owned);
    if configured.is_some() {
        return Err(Error::new(
            format!("ARTIFACT_BUCKET={name} does not exist in region {}", aws.region),
            "create it, or unset ARTIFACT_BUCKET so the deployer creates a hardened one",
        ));
    }
    let mut create = aws.s3.create_bucket().bucket(&name);
    // us-east-1 is the one region that refuses an explicit location constraint.
    if aws.region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(aws.region.as_str()))
                .build(),
        );
    }
    let bucket = Bucket {
        name: name.clone(),
        owner: account.to_owned(),
        created: true,
    };
    match create.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
        {
            return Ok(Bucket {
                created: false,
                ..bucket
            });
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_exists()) => {
            return Err(Error::new(
                format!("the default artifact bucket name {name} is taken by another account"),
                "set ARTIFACT_BUCKET to a bucket of this account",
            ));
        }
        Err(e) => {
            return Err(Error::aws(format_args!("create artifact bucket {name}"), &e).with_fix(
                "the deploying role needs s3:CreateBucket (docs/iam-policy.json), or set ARTIFACT_BUCKET to an existing bucket of this account",
            ));
        }
    }
    if let Err(problem) = harden(aws, &bucket).await {
        let cleanup = match aws
            .s3
            .delete_bucket()
            .bucket(&name)
            .expected_bucket_owner(account)
            .send()
            .await
        {
            Ok(_) => "the new bucket was deleted again".to_owned(),
            Err(e) => format!(
                "deleting the new bucket also failed ({}): delete {name} by hand",
                aws::describe(&e)
            ),
        };
        return Err(Error::new(format!("{}; {cleanup}", problem.cause), problem.fix));
    }
    Ok(bucket)
}

/// Encryption at rest, no public access, TLS only, versioning, and a lifecycle that
/// expires superseded versions and abandoned uploads. Current artifacts stay: a
/// rollback re-reads the previous one from here.
async fn harden(aws: &Aws, bucket: &Bucket) -> Result<()> {
    let (name, owner) = (bucket.name.as_str(), bucket.owner.as_str());
    let fail = |what: &str, e: String| {
        Error::new(
            format!("could not {what} on new artifact bucket {name} ({e})"),
            "the deploying role needs the s3:Put* permissions in docs/iam-policy.json",
        )
    };
    let built = |e: aws_sdk_s3::error::BuildError| {
        Error::new(
            format!("could not build an S3 request ({e})"),
            "report this as a bug",
        )
    };
    let sse = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .map_err(built)?,
                )
                .build(),
        )
        .build()
        .map_err(built)?;
    aws.s3
        .put_bucket_encryption()
        .bucket(name)
        .expected_bucket_owner(owner)
        .server_side_encryption_configuration(sse)
        .send()
        .await
        .map_err(|e| fail("turn on encryption", aws::describe(&e)))?;
    aws.s3
        .put_public_access_block()
        .bucket(name)
        .expected_bucket_owner(owner)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| fail("block public access", aws::describe(&e)))?;
    // Over a plain-HTTP endpoint (a local emulator) a TLS-only policy would lock the
    // deployer itself out of the bucket.
    if !aws.plain_http {
        aws.s3
            .put_bucket_policy()
            .bucket(name)
            .expected_bucket_owner(owner)
            .policy(tls_only_policy(name))
            .send()
            .await
            .map_err(|e| fail("set the TLS-only policy", aws::describe(&e)))?;
    }
    aws.s3
        .put_bucket_versioning()
        .bucket(name)
        .expected_bucket_owner(owner)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| fail("turn on versioning", aws::describe(&e)))?;
    let rule = LifecycleRule::builder()
        .id("expire-superseded-artifacts")
        .status(ExpirationStatus::Enabled)
        // Every stack's objects: superseded versions expire, current ones stay.
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(30).build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(7)
                .build(),
        )
        .build()
        .map_err(built)?;
    aws.s3
        .put_bucket_lifecycle_configuration()
        .bucket(name)
        .expected_bucket_owner(owner)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(built)?,
        )
        .send()
        .await
        .map_err(|e| fail("set the lifecycle rule", aws::describe(&e)))?;
    Ok(())
}

pub fn tls_only_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
    .to_string()
}

/// Stores `body` under `key` unless the object there already holds exactly these bytes
/// (by the SHA-256 checksum S3 stored with it). Returns whether it uploaded.
pub async fn put(aws: &Aws, bucket: &Bucket, key: &str, body: &[u8], content_type: &str) -> Result<bool> {
    let name = &bucket.name;
    let wanted = aws_smithy_types::base64::encode(Sha256::digest(body));
    match aws
        .s3
        .head_object()
        .bucket(name)
        .key(key)
        .expected_bucket_owner(&bucket.owner)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
    {
        Ok(found) if found.checksum_sha256() == Some(wanted.as_str()) => return Ok(false),
        // Another content, or one stored without a checksum: the upload replaces it.
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => return Err(Error::aws(format_args!("check s3://{name}/{key}"), &e)),
    }
    // Throttling, timeouts and 5xx answers are retried by the SDK (five attempts with
    // backoff, see aws.rs); the body is in memory, so every attempt resends it whole.
    aws.s3
        .put_object()
        .bucket(name)
        .key(key)
        .expected_bucket_owner(&bucket.owner)
        .content_type(content_type)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .map_err(|e| Error::aws(format_args!("upload s3://{name}/{key}"), &e))?;
    Ok(true)
}

/// What destroy removed from the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub versions: usize,
    /// The bucket itself, once nothing else was left in it.
    pub bucket: bool,
}

/// Deletes every version of this stack's objects, and the bucket when nothing else is
/// left in it: other stacks of the account keep theirs (their rollbacks read them).
/// Objects S3 refuses to delete are reported, never retried in a loop.
pub async fn delete_stack_objects(aws: &Aws, bucket: &Bucket, stack: &str) -> Result<Removed> {
    let name = &bucket.name;
    let prefix = stack_prefix(stack);
    let mut removed = 0;
    let mut marker: Option<(String, Option<String>)> = None;
    loop {
        let page = aws
            .s3
            .list_object_versions()
            .bucket(name)
            .prefix(&prefix)
            .expected_bucket_owner(&bucket.owner)
            .set_key_marker(marker.as_ref().map(|(k, _)| k.clone()))
            .set_version_id_marker(marker.as_ref().and_then(|(_, v)| v.clone()))
            .send()
            .await
            .map_err(|e| Error::aws(format_args!("list s3://{name}/{prefix}"), &e))?;
        let ids: Vec<ObjectIdentifier> = page
            .versions()
            .iter()
            .filter_map(|v| Some((v.key()?, v.version_id())))
            .chain(
                page.delete_markers()
                    .iter()
                    .filter_map(|m| Some((m.key()?, m.version_id()))),
            )
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key)
                    .set_version_id(version.map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        if !ids.is_empty() {
            let count = ids.len();
            let batch = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| {
                    Error::new(
                        format!("could not build an S3 request ({e})"),
                        "report this as a bug",
                    )
                })?;
            let answer = aws
                .s3
                .delete_objects()
                .bucket(name)
                .expected_bucket_owner(&bucket.owner)
                .delete(batch)
                .send()
                .await
                .map_err(|e| {
                    Error::aws(
                        format_args!("delete this stack's objects in s3://{name}/{prefix}"),
                        &e,
                    )
                })?;
            if let Some(first) = answer.errors().first() {
                return Err(Error::new(
                    format!(
                        "S3 refused to delete {} of this stack's objects in s3://{name}/{prefix}, first {} ({}: {})",
                        answer.errors().len(),
                        first.key().unwrap_or_default(),
                        first.code().unwrap_or("error"),
                        first.message().unwrap_or("no message")
                    ),
                    "give the deploying role s3:DeleteObject and s3:DeleteObjectVersion on the bucket (docs/iam-policy.json), or remove the objects by hand, then run destroy again",
                ));
            }
            removed += count;
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        marker = page
            .next_key_marker()
            .map(|k| (k.to_owned(), page.next_version_id_marker().map(str::to_owned)));
        if marker.is_none() {
            break;
        }
    }
    let others = aws
        .s3
        .list_object_versions()
        .bucket(name)
        .expected_bucket_owner(&bucket.owner)
        .max_keys(1)
        .send()
        .await
        .map_err(|e| Error::aws(format_args!("list s3://{name}"), &e))?;
    if !others.versions().is_empty() || !others.delete_markers().is_empty() {
        return Ok(Removed {
            versions: removed,
            bucket: false,
        });
    }
    aws.s3
        .delete_bucket()
        .bucket(name)
        .expected_bucket_owner(&bucket.owner)
        .send()
        .await
        .map_err(|e| Error::aws(format_args!("delete bucket {name}"), &e))?;
    Ok(Removed {
        versions: removed,
        bucket: true,
    })
}
