//! The infrastructure is described three times: `template.yaml` (deployments),
//! `hookflow provision` (moto, LocalStack, sandboxes) and the cargo-lambda
//! watch router in `Cargo.toml`. This checks that they agree: what provision
//! creates on moto is described back and compared with the template (read by
//! tests/infra_shape.py), and the router with the template's HTTP routes.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::TimeToLiveStatus;
use aws_sdk_sqs::types::QueueAttributeName;
use hookflow_core::adapters::aws::{AwsClients, provision};
use hookflow_core::testkit::services::service_env;
use serde_json::{Value, json};

use crate::harness::venv_python;

/// What template.yaml and Cargo.toml say, as tests/infra_shape.py reads them.
async fn described_in_the_template(python: &std::path::Path) -> Value {
    let out = tokio::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/infra_shape.py"))
        .output()
        .await
        .expect("run tests/infra_shape.py");
    assert!(
        out.status.success(),
        "infra_shape.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("infra_shape.py prints JSON")
}

fn keys(schema: &[aws_sdk_dynamodb::types::KeySchemaElement]) -> Value {
    schema
        .iter()
        .map(|k| json!([k.attribute_name(), k.key_type().as_str()]))
        .collect()
}

/// A table as moto describes it, in the template's shape.
async fn described_by_moto(clients: &AwsClients, name: &str) -> Value {
    let table = clients
        .dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .expect("describe table")
        .table
        .expect("table");
    let attributes: BTreeMap<&str, &str> = table
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name(), a.attribute_type().as_str()))
        .collect();
    let indexes: BTreeMap<&str, Value> = table
        .global_secondary_indexes()
        .iter()
        .map(|i| {
            (
                i.index_name().unwrap_or_default(),
                json!({
                    "key": keys(i.key_schema()),
                    "projection": i.projection().and_then(|p| p.projection_type()).map(|t| t.as_str()),
                }),
            )
        })
        .collect();
    let ttl = clients
        .dynamodb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .expect("describe TTL")
        .time_to_live_description
        .filter(|d| d.time_to_live_status() == Some(&TimeToLiveStatus::Enabled))
        .and_then(|d| d.attribute_name().map(str::to_owned));
    json!({
        "key": keys(table.key_schema()),
        "attributes": attributes,
        "indexes": indexes,
        "ttl": ttl,
    })
}

async fn queue_attributes(clients: &AwsClients, url: &str) -> BTreeMap<String, String> {
    clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect()
}

fn number(text: Option<&String>) -> Value {
    json!(text.and_then(|t| t.parse::<u64>().ok()))
}

#[tokio::test]
async fn template_provision_and_watch_router_describe_the_same_infrastructure() {
    let Some(python) = venv_python() else {
        return;
    };
    if service_env("moto", ["AWS_ENDPOINT_URL"]).is_none() {
        return;
    }
    let template = described_in_the_template(&python).await;
    let clients = AwsClients::from_env().await;
    let prefix = format!("infra-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let resources = provision(&clients, &prefix)
        .await
        .expect("provision on moto");

    assert_eq!(
        template["table_resources"].as_array().map(Vec::len),
        Some(5),
        "a table in template.yaml that provision does not create: {}",
        template["table_resources"]
    );
    for (name, table) in [
        ("webhooks", &resources.webhooks_table),
        ("pipelines", &resources.pipelines_table),
        ("events", &resources.events_table),
        ("outgoing", &resources.outgoing_table),
        ("invocations", &resources.invocations_table),
    ] {
        assert_eq!(
            described_by_moto(&clients, table).await,
            template["tables"][name],
            "the {name} table: provision (left) and template.yaml (right) differ"
        );
    }

    let queue = queue_attributes(&clients, &resources.queue_url).await;
    let redrive: Value = serde_json::from_str(queue.get("RedrivePolicy").expect("redrive policy"))
        .expect("redrive policy JSON");
    let max_receive_count = match &redrive["maxReceiveCount"] {
        Value::String(text) => json!(text.parse::<u64>().ok()),
        other => other.clone(),
    };
    let dead_letters = queue_attributes(
        &clients,
        resources
            .dead_letter_queue_url
            .as_deref()
            .expect("a dead-letter queue"),
    )
    .await;
    assert_eq!(
        json!({
            "visibility": number(queue.get("VisibilityTimeout")),
            "retention": number(queue.get("MessageRetentionPeriod")),
            "maxReceiveCount": max_receive_count,
            "deadLetterRetention": number(dead_letters.get("MessageRetentionPeriod")),
        }),
        template["queue"],
        "the job queue: provision (left) and template.yaml (right) differ"
    );
    assert_eq!(
        dead_letters.get("QueueArn").map(String::as_str),
        redrive["deadLetterTargetArn"].as_str(),
        "the job queue's redrive target is its dead-letter queue"
    );

    assert_eq!(
        template["watch_routes"], template["routes"],
        "the cargo-lambda watch router in Cargo.toml (left) and template.yaml's HTTP API (right) differ"
    );
}
