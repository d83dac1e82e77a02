//! Creates the AWS resources when they are missing, with the settings of
//! `template.yaml`: for `serve --backend aws --provision` against moto,
//! LocalStack or a sandbox account. Deployments use the SAM template instead.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;

use super::dynamo::{OUTCOME_PAYLOAD_PREFIX, PAYLOAD_PREFIX, PIPELINES_BY_EVENT_KEY};
use super::eventlog::{EVENTS_BY_KEY, EVENTS_BY_TIME, LOG_PARTITION, LOG_PROJECTION, LOG_SORT};
use super::outgoing::INVOCATIONS_BY_WEBHOOK;
use super::{AwsClients, AwsResources, describe_failure};
use crate::outgoing::settings::DEFAULT_QUEUE_RETENTION;
use crate::pipeline::worker::MAX_RECEIVES;

/// Deliveries of a job before SQS moves it to the dead-letter queue, as in
/// template.yaml: the worker ends jobs itself (see [`MAX_RECEIVES`]).
pub const MAX_RECEIVE_COUNT: u32 = MAX_RECEIVES;
/// Six times the worker's 30 s timeout, as AWS advises for Lambda event sources.
pub const QUEUE_VISIBILITY_SECONDS: u32 = 180;

/// Days S3 keeps a claim-checked event or outcome, as in template.yaml: the
/// default event retention (3 days), the longest the AWS shape allows.
pub const PAYLOAD_LIFETIME_DAYS: i32 = 3;

/// Provisioning errors are reported to the operator as text.
type Provisioned<T> = Result<T, String>;

fn key(name: &str, kind: KeyType) -> Provisioned<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| e.to_string())
}

fn attribute(name: &str) -> Provisioned<AttributeDefinition> {
    typed_attribute(name, ScalarAttributeType::S)
}

fn typed_attribute(name: &str, kind: ScalarAttributeType) -> Provisioned<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .map_err(|e| e.to_string())
}

/// Turns on TTL deletion by the `expiresAt` attribute (epoch seconds).
async fn enable_ttl(db: &aws_sdk_dynamodb::Client, table: &str) -> Provisioned<()> {
    db.update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expiresAt")
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|e| format!("enabling TTL on {table}: {}", describe_failure(&e)))?;
    Ok(())
}

async fn table_exists(db: &aws_sdk_dynamodb::Client, name: &str) -> Provisioned<bool> {
    match db.describe_table().table_name(name).send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(format!("describing {name}: {}", describe_failure(&e))),
    }
}

/// A created table, or one another process created meanwhile: both are fine.
fn created(
    result: Result<
        aws_sdk_dynamodb::operation::create_table::CreateTableOutput,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::create_table::CreateTableError,
        >,
    >,
    table: &str,
) -> Provisioned<()> {
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(format!("creating {table}: {}", describe_failure(&e))),
    }
}

/// Creates the tables, the queue with its dead-letter queue, and the payload
/// bucket named `<prefix>-…` where missing; returns their names and the queue URL.
pub async fn provision(clients: &AwsClients, prefix: &str) -> Provisioned<AwsResources> {
    let resources = AwsResources {
        webhooks_table: format!("{prefix}-webhooks"),
        pipelines_table: format!("{prefix}-pipelines"),
        events_table: format!("{prefix}-events"),
        queue_url: String::new(),
        payload_bucket: format!("{prefix}-payloads"),
        outgoing_table: format!("{prefix}-outgoing"),
        invocations_table: format!("{prefix}-invocations"),
        dead_letter_queue_url: None,
    };
    let db = &clients.dynamodb;

    if !table_exists(db, &resources.webhooks_table).await? {
        created(
            db.create_table()
                .table_name(&resources.webhooks_table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attribute("pk")?)
                .key_schema(key("pk", KeyType::Hash)?)
                .send()
                .await,
            &resources.webhooks_table,
        )?;
        enable_ttl(db, &resources.webhooks_table).await?;
    }
    if !table_exists(db, &resources.pipelines_table).await? {
        let index = GlobalSecondaryIndex::builder()
            .index_name(PIPELINES_BY_EVENT_KEY)
            .key_schema(key("eventKey", KeyType::Hash)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .map_err(|e| e.to_string())?;
        created(
            db.create_table()
                .table_name(&resources.pipelines_table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attribute("name")?)
                .attribute_definitions(attribute("eventKey")?)
                .key_schema(key("name", KeyType::Hash)?)
                .global_secondary_indexes(index)
                .send()
                .await,
            &resources.pipelines_table,
        )?;
    }
    if !table_exists(db, &resources.events_table).await? {
        // The event log's indexes, as in template.yaml (see `aws::eventlog`).
        let log_index = |name: &str, partition: &str| {
            let mut projected: Vec<String> = LOG_PROJECTION.iter().map(|a| a.to_string()).collect();
            if partition != "eventKey" {
                projected.push("eventKey".to_owned());
            }
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(partition, KeyType::Hash)?)
                .key_schema(key(LOG_SORT, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .set_non_key_attributes(Some(projected))
                        .build(),
                )
                .build()
                .map_err(|e| e.to_string())
        };
        created(
            db.create_table()
                .table_name(&resources.events_table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attribute("correlationId")?)
                .attribute_definitions(attribute("sk")?)
                .attribute_definitions(attribute(LOG_PARTITION)?)
                .attribute_definitions(attribute(LOG_SORT)?)
                .attribute_definitions(attribute("eventKey")?)
                .key_schema(key("correlationId", KeyType::Hash)?)
                .key_schema(key("sk", KeyType::Range)?)
                .global_secondary_indexes(log_index(EVENTS_BY_TIME, LOG_PARTITION)?)
                .global_secondary_indexes(log_index(EVENTS_BY_KEY, "eventKey")?)
                .send()
                .await,
            &resources.events_table,
        )?;
        enable_ttl(db, &resources.events_table).await?;
    }
    if !table_exists(db, &resources.outgoing_table).await? {
        created(
            db.create_table()
                .table_name(&resources.outgoing_table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attribute("id")?)
                .key_schema(key("id", KeyType::Hash)?)
                .send()
                .await,
            &resources.outgoing_table,
        )?;
    }
    if !table_exists(db, &resources.invocations_table).await? {
        let index = GlobalSecondaryIndex::builder()
            .index_name(INVOCATIONS_BY_WEBHOOK)
            .key_schema(key("webhookId", KeyType::Hash)?)
            .key_schema(key("createdAt", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| e.to_string())?;
        created(
            db.create_table()
                .table_name(&resources.invocations_table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attribute("referenceId")?)
                .attribute_definitions(attribute("webhookId")?)
                .attribute_definitions(typed_attribute("createdAt", ScalarAttributeType::N)?)
                .key_schema(key("referenceId", KeyType::Hash)?)
                .global_secondary_indexes(index)
                .send()
                .await,
            &resources.invocations_table,
        )?;
        enable_ttl(db, &resources.invocations_table).await?;
    }

    // CreateQueue is idempotent for the same attributes: it returns the existing URL.
    let sqs = &clients.sqs;
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{prefix}-pipeline-jobs-dlq"))
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(|e| format!("creating the dead-letter queue: {}", describe_failure(&e)))?
        .queue_url
        .unwrap_or_default();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("reading the dead-letter queue: {}", describe_failure(&e)))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let redrive =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{MAX_RECEIVE_COUNT}"}}"#);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("{prefix}-pipeline-jobs"))
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            QUEUE_VISIBILITY_SECONDS.to_string(),
        )
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            DEFAULT_QUEUE_RETENTION.as_secs().to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .map_err(|e| format!("creating the job queue: {}", describe_failure(&e)))?
        .queue_url
        .unwrap_or_default();

    let s3 = &clients.s3;
    if s3
        .head_bucket()
        .bucket(&resources.payload_bucket)
        .send()
        .await
        .is_err()
    {
        // Outside us-east-1 a bucket must name its region.
        let region = s3
            .config()
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_default();
        let location = (!region.is_empty() && region != "us-east-1").then(|| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build()
        });
        s3.create_bucket()
            .bucket(&resources.payload_bucket)
            .set_create_bucket_configuration(location)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "creating bucket {}: {}",
                    resources.payload_bucket,
                    describe_failure(&e)
                )
            })?;
        // Claim-checked events and outcomes live as long as the event log keeps them.
        let expire = |id: &str, prefix: &str| {
            LifecycleRule::builder()
                .id(id)
                .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
                .expiration(
                    LifecycleExpiration::builder()
                        .days(PAYLOAD_LIFETIME_DAYS)
                        .build(),
                )
                .status(ExpirationStatus::Enabled)
                .build()
                .map_err(|e| e.to_string())
        };
        s3.put_bucket_lifecycle_configuration()
            .bucket(&resources.payload_bucket)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .rules(expire("expire-claim-checked-events", PAYLOAD_PREFIX)?)
                    .rules(expire(
                        "expire-claim-checked-outcomes",
                        OUTCOME_PAYLOAD_PREFIX,
                    )?)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .send()
            .await
            .map_err(|e| {
                format!(
                    "setting the lifecycle of {}: {}",
                    resources.payload_bucket,
                    describe_failure(&e)
                )
            })?;
    }
    Ok(AwsResources {
        queue_url,
        dead_letter_queue_url: Some(dlq_url),
        ..resources
    })
}
