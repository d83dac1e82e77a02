//! What any function of hookflow's shape pays before its own code: the
//! `lambda_runtime` loop, `aws-config`, and DynamoDB and S3 clients, with one
//! Query and one GetObject per event (what `result-poll` does at most).
//! `bench/lambda_init.py` sets its size and init beside the functions'.

use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_from_env().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let table = std::env::var("HOOKFLOW_EVENTS_TABLE")?;
    let bucket = std::env::var("HOOKFLOW_PAYLOAD_BUCKET")?;
    run(service_fn(|event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let (dynamodb, s3, table, bucket) = (&dynamodb, &s3, &table, &bucket);
        async move {
            let key = event.payload.raw_path.unwrap_or_default();
            let query = dynamodb
                .query()
                .table_name(table)
                .key_condition_expression("correlationId = :id")
                .expression_attribute_values(":id", AttributeValue::S(key.clone()))
                .send()
                .await;
            let object = s3.get_object().bucket(bucket).key(key).send().await;
            // The key names no stored event: the Query finds nothing, the
            // GetObject answers NoSuchKey; each is one round trip.
            Ok::<_, Error>(json!({"query": query.is_ok(), "getObject": object.is_ok()}))
        }
    }))
    .await
}
