//! The artifact bucket and the upload of the function zip under its content hash.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    BucketVersioningStatus, CreateBucketConfiguration, ExpirationStatus, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    VersioningConfiguration,
};

use crate::artifact::Artifact;
use crate::aws::{self, Aws};

pub const KEY_PREFIX: &str = "openai-proxy-function/";

/// The default bucket name: one per account and region, so every stack there shares it.
pub fn default_name(account: &str, region: &str) -> String {
    format!("openai-lambda-proxy-{account}-{region}")
}

pub fn key(artifact: &Artifact) -> String {
    format!("{KEY_PREFIX}{}.zip", artifact.sha256_hex)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    pub created: bool,
}

/// Finds the bucket, or creates and hardens the default one. A bucket the deployer
/// created but could not harden is deleted again, never left open.
pub async fn ensure(aws: &Aws, configured: Option<&str>, account: &str) -> Result<Bucket, String> {
    let name = configured.map_or_else(|| default_name(account, &aws.region), str::to_owned);
    match aws.s3.head_bucket().bucket(&name).send().await {
        Ok(_) => return Ok(Bucket { name, created: false }),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => {
            return Err(format!(
                "artifact bucket {name} is not accessible ({}): it may belong to another account; set ARTIFACT_BUCKET to a bucket you own",
                aws::describe(&e)
            ));
        }
    }
    if configured.is_some() {
        return Err(format!(
            "ARTIFACT_BUCKET={name} does not exist in region {}: create it, or unset ARTIFACT_BUCKET so the deployer creates a hardened one",
            aws.region
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
    match create.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
        {
            return Ok(Bucket { name, created: false });
        }
        Err(e) => {
            return Err(format!(
                "could not create artifact bucket {name} ({}): the deploying role needs s3:CreateBucket, or set ARTIFACT_BUCKET to an existing bucket",
                aws::describe(&e)
            ));
        }
    }
    if let Err(problem) = harden(aws, &name).await {
        let cleanup = match aws.s3.delete_bucket().bucket(&name).send().await {
            Ok(_) => "the new bucket was deleted again".to_owned(),
            Err(e) => format!(
                "deleting the new bucket also failed ({}): delete {name} by hand",
                aws::describe(&e)
            ),
        };
        return Err(format!("{problem}; {cleanup}"));
    }
    Ok(Bucket { name, created: true })
}

/// Encryption at rest, no public access, TLS only, versioning, and a lifecycle that
/// expires superseded versions and abandoned uploads. Current artifacts stay: a
/// rollback re-reads the previous one from here.
async fn harden(aws: &Aws, name: &str) -> Result<(), String> {
    let fail = |what: &str, e: String| {
        format!(
            "could not {what} on new artifact bucket {name} ({e}): the deploying role needs the s3:Put* permissions in docs/iam-policy.json"
        )
    };
    let sse = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    aws.s3
        .put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(sse)
        .send()
        .await
        .map_err(|e| fail("turn on encryption", aws::describe(&e)))?;
    aws.s3
        .put_public_access_block()
        .bucket(name)
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
            .policy(tls_only_policy(name))
            .send()
            .await
            .map_err(|e| fail("set the TLS-only policy", aws::describe(&e)))?;
    }
    aws.s3
        .put_bucket_versioning()
        .bucket(name)
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
        .filter(LifecycleRuleFilter::builder().prefix(KEY_PREFIX).build())
        .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(30).build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(7)
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    aws.s3
        .put_bucket_lifecycle_configuration()
        .bucket(name)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| e.to_string())?,
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

/// Uploads the zip unless an object with its content hash is already there.
/// Returns whether it uploaded.
pub async fn upload(aws: &Aws, bucket: &str, artifact: &Artifact) -> Result<bool, String> {
    let key = key(artifact);
    match aws.s3.head_object().bucket(bucket).key(&key).send().await {
        Ok(_) => return Ok(false),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => {
            return Err(format!(
                "could not check s3://{bucket}/{key} ({}): the deploying role needs s3:GetObject on the bucket",
                aws::describe(&e)
            ));
        }
    }
    // Throttling, timeouts and 5xx answers are retried by the SDK (five attempts with
    // backoff, see aws.rs); the body is in memory, so every attempt resends it whole.
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .content_type("application/zip")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(artifact.zip.clone()))
        .send()
        .await
        .map_err(|e| {
            format!(
                "could not upload the function to s3://{bucket}/{key} ({}): retry the job; if it persists, check s3:PutObject on the bucket",
                aws::describe(&e)
            )
        })?;
    Ok(true)
}

/// Deletes every object version and the bucket (destroy with DESTROY_ARTIFACTS).
pub async fn delete(aws: &Aws, bucket: &str) -> Result<usize, String> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let mut deleted = 0;
    loop {
        let page = match aws.s3.list_object_versions().bucket(bucket).send().await {
            Ok(page) => page,
            Err(e) if aws::error_code(&e) == Some("NoSuchBucket") => return Ok(deleted),
            Err(e) => {
                return Err(format!(
                    "could not list s3://{bucket} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again",
                    aws::describe(&e)
                ));
            }
        };
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
        if ids.is_empty() {
            break;
        }
        deleted += ids.len();
        let batch = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .map_err(|e| e.to_string())?;
        aws.s3
            .delete_objects()
            .bucket(bucket)
            .delete(batch)
            .send()
            .await
            .map_err(|e| format!("could not empty s3://{bucket} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again", aws::describe(&e)))?;
    }
    aws.s3
        .delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| format!("could not delete bucket {bucket} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again", aws::describe(&e)))?;
    Ok(deleted)
}
