//! `webhook.send` as a pipeline step.

use super::*;

const PIPELINE: &str = "pipeline:
  - event.listen:
      eventKey: webhook.order.created
  - iam.run.as: systemuser
  - webhook.send:
      webhookId: notify-crm
      data: ${@convert.fromJson(@convert.fromBase64(body.origin))}
";

#[tokio::test]
async fn a_pipeline_step_sends_and_its_answer_becomes_the_body() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(
        |endpoint| json!({"id": "notify-crm", "url": endpoint.url("/orders"), "method": "POST"}),
    )
    .await;
    endpoint.script([Reply::json(202, &json!({"queued": true}))]);
    let token = server.create_webhook("webhook.order.created", &[]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, stored) = server.put_pipeline("order-to-crm", PIPELINE).await;
    assert_eq!(status, StatusCode::OK, "{stored}");

    let (correlation_id, result) = pipeline_result(&server, &token, r#"{"order": 17}"#).await;
    assert_eq!(result["status"], "ok", "{result}");
    let value = &result["value"];
    let id = reference_id(value);
    assert_eq!(
        value,
        &json!({"referenceId": id, "status": 202, "data": {"queued": true}, "error": false})
    );
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].json(), json!({"order": 17}));
    let record = invocation(&server, &id).await;
    assert_eq!(record["caller"], "pipeline:order-to-crm");
    assert_eq!(record["correlationId"], correlation_id);
    assert_eq!(record["async"], false);
    assert_eq!(record["state"], "succeeded");

    // A refused trigger fails the step with the registry's code.
    let missing = PIPELINE.replace("notify-crm", "not-registered");
    server.put_pipeline("order-to-crm", &missing).await;
    let (_, result) = pipeline_result(&server, &token, r#"{"order": 18}"#).await;
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["error"]["code"], "outgoing_webhook_not_found");
    assert_eq!(endpoint.requests().len(), 1);
}

#[tokio::test]
async fn a_pipeline_needs_the_webhook_send_permission() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(
        |endpoint| json!({"id": "notify-crm", "url": endpoint.url("/orders"), "method": "POST"}),
    )
    .await;
    let token = server.create_webhook("webhook.order.created", &[]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let anonymous = PIPELINE.replace("  - iam.run.as: systemuser\n", "");
    let (status, stored) = server.put_pipeline("no-permission", &anonymous).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let (_, result) = pipeline_result(&server, &token, r#"{"order": 1}"#).await;
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["error"]["code"], "permission_denied");
    assert!(
        result["error"]["step"]
            .as_str()
            .unwrap()
            .starts_with("webhook.send"),
        "{result}"
    );
    assert!(endpoint.requests().is_empty());
    assert_eq!(
        invocations(&server, "notify-crm").await,
        Vec::<Value>::new()
    );
}
