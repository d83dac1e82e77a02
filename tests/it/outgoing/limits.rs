//! Size bounds: the endpoint's answer read up to the cap, records and asynchronous bodies bounded.

use super::*;

#[tokio::test]
async fn an_answer_larger_than_the_cap_is_not_read() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::options()
        .server_env(&[ALLOW, ("HOOKFLOW_OUTGOING_MAX_RESPONSE_BYTES", "1024")])
        .start(|endpoint| json!({"id": "chatty", "url": endpoint.url("/c"), "method": "POST"}))
        .await;
    endpoint.script([
        Reply::text(200, &"a".repeat(1024)),
        Reply::text(200, &"b".repeat(1025)),
        Reply::text(500, &"c".repeat(5000)),
    ]);
    let (answer, _) = send_ok(&server, &json!({"webhookId": "chatty", "data": {}})).await;
    assert_eq!(answer["data"], "a".repeat(1024), "exactly the cap is read");
    let (answer, id) = send_ok(&server, &json!({"webhookId": "chatty", "data": {}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 200, "data": null, "error": false}),
        "the status counts, the body is dropped"
    );
    let record = invocation(&server, &id).await;
    assert!(
        record["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("larger than 1024 bytes")),
        "{record}"
    );
    let (answer, id) = send_ok(&server, &json!({"webhookId": "chatty", "data": {}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 500, "data": null, "error": true})
    );
}

#[tokio::test]
async fn records_keep_large_answers_and_async_bodies_bounded() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(
        |endpoint| json!({"id": "bulky", "url": endpoint.url("/b"), "method": "POST"}),
    )
    .await;
    // An answer of 100 KiB: the caller gets all of it, the record a note.
    let big = json!({"items": "x".repeat(100 * 1024)});
    endpoint.script([Reply::json(200, &big)]);
    let (answer, id) = send_ok(&server, &json!({"webhookId": "bulky", "data": {}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 200, "data": big, "error": false})
    );
    let record = invocation(&server, &id).await;
    assert_eq!(record["state"], "succeeded");
    let omitted = record["data"]["omitted"].as_str().expect("a note");
    assert!(omitted.contains("larger than"), "{omitted}");

    // An asynchronous body waits in the record: at most 192 KiB.
    let (status, body) = send(
        &server,
        &json!({"webhookId": "bulky", "data": "y".repeat(192 * 1024 + 1), "async": true}),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
    assert_eq!(endpoint.requests().len(), 1);
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "bulky", "data": "z".repeat(192 * 1024), "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let record = finished_invocation(&server, &reference_id(&answer)).await;
    assert_eq!(record["state"], "succeeded", "{record}");
    assert_eq!(record["request"]["bodyBytes"], 192 * 1024);
    let requests = endpoint.wait_for_requests(2, Duration::from_secs(5)).await;
    assert_eq!(requests[1].body.len(), 192 * 1024);
}
