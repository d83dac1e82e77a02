//! Asynchronous deliveries: retries, `Retry-After`, giving up, stopping when the registration changes, and 410 Gone.

use super::*;

#[tokio::test]
async fn async_deliveries_are_retried_until_they_succeed() {
    let Some(python) = venv_python() else {
        return;
    };
    let secret = new_secret();
    let OutgoingFixture { server, endpoint, .. } = OutgoingFixture::start(|endpoint| {
        json!({"id": "retried", "url": endpoint.url("/r"), "method": "POST", "secret": secret})
    })
    .await;
    endpoint.script([
        Reply::json(500, &json!({"error": "first"})),
        Reply::text(503, "busy"),
    ]);
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "retried", "data": {"order": 7}, "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = reference_id(&answer);
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": "processing", "data": null, "error": false})
    );
    let record = finished_invocation(&server, &id).await;
    assert_eq!(record["state"], "succeeded", "{record}");
    assert_eq!(record["status"], 200);
    assert_eq!(record["error"], false);
    assert_eq!(record["async"], true);
    assert_eq!(record["data"], json!({"ok": true}));
    assert!(record.get("errorMessage").is_none(), "{record}");
    assert!(record.get("nextAttemptAt").is_none(), "{record}");
    let statuses: Vec<&Value> = record["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [&json!(500), &json!(503), &json!(200)]);
    assert_eq!(
        record["attempts"][0]["errorMessage"],
        "the endpoint answered 500"
    );
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.header("webhook-id"), Some(id.as_str()));
        assert_eq!(request.json(), json!({"order": 7}));
        assert!(verifies(&python, &secret, request).await);
    }
}

#[tokio::test]
async fn async_deliveries_give_up_after_the_schedule() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::options()
        .server_env(&[ALLOW, ("HOOKFLOW_OUTGOING_RETRY_SCHEDULE", "1s,1s")])
        .answering(Reply::json(500, &json!({"error": "down"})))
        .start(|endpoint| json!({"id": "broken", "url": endpoint.url("/b"), "method": "POST"}))
        .await;
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "broken", "data": {"x": 1}, "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = reference_id(&answer);
    let record = finished_invocation(&server, &id).await;
    assert_eq!(record["state"], "failed", "{record}");
    assert_eq!(record["status"], 500);
    assert_eq!(record["error"], true);
    assert_eq!(record["attempts"].as_array().unwrap().len(), 3, "{record}");
    let message = record["errorMessage"].as_str().unwrap();
    assert!(message.starts_with("gave up after 3 attempts"), "{message}");
    // No fourth try.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(endpoint.requests().len(), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(
        |endpoint| json!({"id": "limited", "url": endpoint.url("/l"), "method": "POST"}),
    )
    .await;
    endpoint.script([Reply::text(429, "slow down").header("retry-after", "2")]);
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "limited", "data": {"x": 1}, "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = reference_id(&answer);
    // Between the two attempts the record says when the next one is due.
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    let waiting = loop {
        let record = invocation(&server, &id).await;
        let attempts = record["attempts"].as_array().unwrap().len();
        if record["state"] == "processing" && attempts == 1 {
            break record;
        }
        assert!(attempts == 0, "the 2 s wait was not seen: {record}");
        assert!(Instant::now() < deadline, "no first attempt: {record}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(waiting["status"], 429, "{waiting}");
    assert_eq!(waiting["error"], true);
    let due = epoch_millis(&waiting["nextAttemptAt"]) - epoch_millis(&waiting["attempts"][0]["at"]);
    assert!(
        due >= 2000,
        "next attempt due {due} ms after the first: {waiting}"
    );
    let record = finished_invocation(&server, &id).await;
    assert_eq!(record["state"], "succeeded", "{record}");
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_secs(2),
        "the retry came {gap:?} after the 429 with Retry-After: 2"
    );
}

#[tokio::test]
async fn a_delivery_stops_when_its_registration_is_deleted_or_disabled() {
    // Retries far enough apart that the registration is changed before a second attempt.
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::options()
        .server_env(&[ALLOW, ("HOOKFLOW_OUTGOING_RETRY_SCHEDULE", "3s,3s")])
        .answering(Reply::status(500))
        .start_unregistered()
        .await;
    for id in ["deleted-later", "disabled-later"] {
        put(
            &server,
            &json!({"id": id, "url": endpoint.url(&format!("/{id}")), "method": "POST"}),
        )
        .await;
    }
    let mut ids = Vec::new();
    for id in ["deleted-later", "disabled-later"] {
        let (status, answer) = send(
            &server,
            &json!({"webhookId": id, "data": {}, "async": true}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        ids.push(reference_id(&answer));
    }
    // Whether or not the first attempt was made by now, no further one is.
    let (status, _) = server
        .command("outgoing.delete", &[("id", "deleted-later")])
        .await;
    assert_eq!(status, StatusCode::OK);
    put(
        &server,
        &json!({"id": "disabled-later", "url": endpoint.url("/disabled-later"), "method": "POST", "enabled": false}),
    )
    .await;
    for (id, why) in ids.iter().zip([
        "the outgoing webhook was deleted",
        "the outgoing webhook is disabled",
    ]) {
        let record = finished_invocation(&server, id).await;
        assert_eq!(record["state"], "failed", "{record}");
        assert_eq!(record["error"], true);
        assert_eq!(record["errorMessage"], why, "{record}");
        assert!(
            record["attempts"].as_array().unwrap().len() <= 1,
            "{record}"
        );
    }
    assert!(endpoint.requests().len() <= 2);
}
#[tokio::test]
async fn a_410_disables_the_registration() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::options()
        .answering(Reply::text(410, "gone for good"))
        .start_unregistered()
        .await;
    for id in ["gone-sync", "gone-async"] {
        put(
            &server,
            &json!({"id": id, "url": endpoint.url(&format!("/{id}")), "method": "POST"}),
        )
        .await;
    }
    let (answer, id) = send_ok(&server, &json!({"webhookId": "gone-sync", "data": {}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 410, "data": "gone for good", "error": true})
    );
    let stored = registration(&server, "gone-sync").await;
    assert_eq!(stored["enabled"], false, "{stored}");
    assert_eq!(stored["disabledReason"], "the endpoint answered 410 Gone");
    let (status, body) = send(&server, &json!({"webhookId": "gone-sync", "data": {}})).await;
    assert_error(status, &body, 409, "outgoing_webhook_disabled");
    assert_eq!(endpoint.requests().len(), 1);

    // Asynchronous: no retries after a 410.
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "gone-async", "data": {}, "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let record = finished_invocation(&server, &reference_id(&answer)).await;
    assert_eq!(record["state"], "failed", "{record}");
    assert_eq!(record["status"], 410);
    assert_eq!(record["attempts"].as_array().unwrap().len(), 1);
    let stored = registration(&server, "gone-async").await;
    assert_eq!(stored["enabled"], false, "{stored}");
    assert_eq!(stored["disabledReason"], "the endpoint answered 410 Gone");
    let (status, body) = send(
        &server,
        &json!({"webhookId": "gone-async", "data": {}, "async": true}),
    )
    .await;
    assert_error(status, &body, 409, "outgoing_webhook_disabled");
    assert_eq!(endpoint.requests().len(), 2);

    // Putting it again enables it.
    endpoint.set_default(Reply::json(200, &json!({"back": true})));
    let stored = put(
        &server,
        &json!({"id": "gone-sync", "url": endpoint.url("/gone-sync"), "method": "POST"}),
    )
    .await;
    assert_eq!(stored["enabled"], true);
    assert!(stored.get("disabledReason").is_none(), "{stored}");
    let (answer, _) = send_ok(&server, &json!({"webhookId": "gone-sync", "data": {}})).await;
    assert_eq!(answer["status"], 200);
}
