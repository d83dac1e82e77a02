//! Secrets, pre-filled headers and trigger values never leak into answers, records or logs.

use super::*;

#[tokio::test]
async fn secrets_never_leak_into_answers_records_or_logs() {
    // The endpoint's answers never echo what they got.
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::options()
        .server_env(&[ALLOW, FAST_RETRIES, ("HOOKFLOW_LOG", "debug")])
        .logged()
        .start_unregistered()
        .await;
    let secret = new_secret();
    let prefilled = format!("Bearer canary-prefilled-{}", uuid::Uuid::new_v4().simple());
    let trigger_value = format!("canary-trigger-{}", uuid::Uuid::new_v4().simple());
    let registration_body = json!({
        "id": "guarded",
        "url": endpoint.url("/g"),
        "method": "POST",
        "headers": {"Authorization": prefilled, "X-Trigger-Token": ""},
        "queryParams": ["page"],
        "secret": secret,
    });
    let mut answers = Vec::new();
    answers.push(put(&server, &registration_body).await);
    answers.push(put(&server, &registration_body).await);
    answers.push(registration(&server, "guarded").await);
    answers.push(server.command("outgoing.get", &[]).await.1);

    let trigger = json!({
        "webhookId": "guarded",
        "data": {"x": 1},
        "headers": {"X-Trigger-Token": trigger_value},
        "queryParams": {"page": 1},
    });
    let mut ids = Vec::new();
    // Succeeds, fails, cannot connect (via a second registration), and async with a retry.
    ids.push(send_ok(&server, &trigger).await.1);
    endpoint.script([Reply::json(500, &json!({"error": "x"}))]);
    ids.push(send_ok(&server, &trigger).await.1);
    let mut down = registration_body.clone();
    down["id"] = json!("guarded-down");
    down["url"] = json!(format!("http://127.0.0.1:{}/d", closed_port()));
    answers.push(put(&server, &down).await);
    let mut down_trigger = trigger.clone();
    down_trigger["webhookId"] = json!("guarded-down");
    ids.push(send_ok(&server, &down_trigger).await.1);
    endpoint.script([Reply::status(503)]);
    let mut async_trigger = trigger.clone();
    async_trigger["async"] = json!(true);
    let (status, answer) = send(&server, &async_trigger).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    answers.push(answer.clone());
    let async_id = reference_id(&answer);
    ids.push(async_id.clone());
    // Refused: the pre-filled header given a value, and a header not registered.
    for headers in [
        json!({"Authorization": trigger_value}),
        json!({"X-Unlisted": trigger_value}),
    ] {
        let mut refused = trigger.clone();
        refused["headers"] = headers;
        let (status, answer) = send(&server, &refused).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        answers.push(answer);
    }
    // From a pipeline too.
    let token = server.create_webhook("webhook.guarded", &[]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let pipeline = format!(
        "pipeline:\n  - event.listen: {{eventKey: webhook.guarded}}\n  - iam.run.as: systemuser\n  - webhook.send:\n      webhookId: guarded\n      data: {{y: 2}}\n      headers:\n        X-Trigger-Token: {trigger_value}\n"
    );
    assert_eq!(
        server.put_pipeline("guarded-pipe", &pipeline).await.0,
        StatusCode::OK
    );
    let (_, result) = pipeline_result(&server, &token, "{}").await;
    assert_eq!(result["status"], "ok", "{result}");
    answers.push(result["value"].clone());
    ids.push(reference_id(&result["value"]));

    assert_eq!(
        finished_invocation(&server, &async_id).await["state"],
        "succeeded"
    );
    // The endpoint did get the values.
    let requests = endpoint.requests();
    // Two synchronous calls, the asynchronous one (once or twice) and the pipeline's.
    assert!(requests.len() >= 4, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some(prefilled.as_str()))
    );
    assert!(
        requests
            .iter()
            .all(|r| r.header("x-trigger-token") == Some(trigger_value.as_str()))
    );

    for id in &ids {
        answers.push(invocation(&server, id).await);
    }
    for webhook_id in ["guarded", "guarded-down"] {
        answers.push(Value::Array(invocations(&server, webhook_id).await));
    }
    answers.push(registration(&server, "guarded").await);
    answers.push(server.command("outgoing.get", &[]).await.1);
    let key = &secret["whsec_".len()..];
    let canaries = [
        secret.as_str(),
        key,
        prefilled.as_str(),
        "canary-prefilled",
        trigger_value.as_str(),
    ];
    for answer in &answers {
        let text = answer.to_string();
        for canary in canaries {
            assert!(!text.contains(canary), "{canary} leaked into {text}");
        }
    }
    let log = server.log_text();
    assert!(
        log.contains("outgoing webhook triggered"),
        "the log was captured"
    );
    for canary in canaries {
        assert!(
            !log.contains(canary),
            "{canary} leaked into the log:\n{log}"
        );
    }
}
