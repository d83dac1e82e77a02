//! Triggers (`webhook.send` from the API): what is sent, how the answer comes back, and what is refused before any call.

use super::*;

#[tokio::test]
async fn a_trigger_sends_what_was_registered_and_answers_with_the_reply() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(|endpoint| {
        json!({
            "id": "crm-create",
            "url": endpoint.url("/hooks/create?source=hookflow"),
            "method": "POST",
            "headers": {"Authorization": "Bearer sk-prefilled-123", "X-Request-Tag": ""},
            "queryParams": ["page", "lang"],
        })
    })
    .await;
    endpoint.script([Reply::json(201, &json!({"created": true, "id": 42}))]);
    let (answer, id) = send_ok(
        &server,
        &json!({
            "webhookId": "crm-create",
            "data": {"name": "Ada", "tags": ["a", "b"], "n": 1},
            "headers": {"X-Request-Tag": "tag-7"},
            "queryParams": {"page": 2, "lang": "de en"},
        }),
    )
    .await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 201, "data": {"created": true, "id": 42}, "error": false})
    );
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        "/hooks/create?source=hookflow&page=2&lang=de+en"
    );
    assert_eq!(
        request.header("authorization"),
        Some("Bearer sk-prefilled-123")
    );
    assert_eq!(request.header("x-request-tag"), Some("tag-7"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(
        request
            .header("user-agent")
            .is_some_and(|a| a.starts_with("hookflow/")),
        "{request:?}"
    );
    assert_eq!(request.header("webhook-signature"), None, "not signed");
    assert_eq!(
        request.json(),
        json!({"name": "Ada", "tags": ["a", "b"], "n": 1})
    );

    // A text reply is the data as text; text data goes as text/plain.
    endpoint.script([Reply::text(200, "accepted, thanks")]);
    let (answer, id) = send_ok(
        &server,
        &json!({"webhookId": "crm-create", "data": "plain words"}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 200, "data": "accepted, thanks", "error": false})
    );
    let request = &endpoint.requests()[1];
    assert_eq!(request.path, "/hooks/create?source=hookflow");
    assert_eq!(request.body, b"plain words");
    assert_eq!(
        request.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(request.header("x-request-tag"), None, "not set this time");

    // Nothing to send: no body, and an empty reply is null data.
    endpoint.script([Reply::status(204)]);
    let (answer, id) = send_ok(&server, &json!({"webhookId": "crm-create"})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 204, "data": null, "error": false})
    );
    assert!(endpoint.requests()[2].body.is_empty());
}

#[tokio::test]
async fn the_seed_examples_get_with_query_and_binary_post() {
    // seeds/004's examples, pointed at the test endpoint.
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(|endpoint| {
        json!({
            "id": "get-randomapi",
            "url": endpoint.url("/api/v1/randomApi"),
            "method": "GET",
            "headers": {},
            "queryParams": ["pageNum"],
        })
    })
    .await;
    let (status, stored) = post_json(
        &server,
        "outgoing.put",
        &json!({
            "id": "send-jpeg",
            "url": endpoint.url("/post"),
            "method": "POST",
            "headers": {"Content-Type": "image/jpeg"},
            "payload_encoding": "base64",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    assert_eq!(stored["payloadEncoding"], "base64");
    assert_eq!(stored["headers"], json!({"Content-Type": "********"}));

    endpoint.script([Reply::json(200, &json!({"page": 3, "items": []}))]);
    let (answer, id) = send_ok(
        &server,
        &json!({"webhookId": "get-randomapi", "data": null, "headers": {}, "queryParams": {"pageNum": 3}}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 200, "data": {"page": 3, "items": []}, "error": false})
    );
    let request = &endpoint.requests()[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/api/v1/randomApi?pageNum=3");
    assert!(request.body.is_empty());

    // Binary: a few bytes that are not UTF-8 arrive as they are.
    let bytes: &[u8] = &[0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x80, 0xfe, 0x4a, 0x46];
    let (answer, _) = send_ok(
        &server,
        &json!({"webhookId": "send-jpeg", "data": B64.encode(bytes)}),
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    let request = &endpoint.requests()[1];
    assert_eq!(request.method, "POST");
    assert_eq!(request.body, bytes);
    assert_eq!(request.header_values("content-type"), ["image/jpeg"]);
    assert_eq!(request.header("content-length"), Some("10"));
}

#[tokio::test]
async fn endpoint_failures_are_answers_with_error_true() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(
        |endpoint| json!({"id": "flaky", "url": endpoint.url("/f"), "method": "POST"}),
    )
    .await;
    endpoint.script([Reply::json(500, &json!({"error": "boom"}))]);
    let (answer, id) = send_ok(&server, &json!({"webhookId": "flaky", "data": {"a": 1}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 500, "data": {"error": "boom"}, "error": true})
    );
    let record = invocation(&server, &id).await;
    assert_eq!(record["state"], "failed");
    assert_eq!(record["errorMessage"], "the endpoint answered 500");

    // Nobody listens: status 0.
    let port = closed_port();
    put(
        &server,
        &json!({"id": "down", "url": format!("http://127.0.0.1:{port}/x?token=hidden"), "method": "POST"}),
    )
    .await;
    let (answer, id) = send_ok(&server, &json!({"webhookId": "down", "data": {"a": 1}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 0, "data": null, "error": true})
    );
    let record = invocation(&server, &id).await;
    assert_eq!(record["state"], "failed");
    assert_eq!(record["status"], 0);
    let message = record["errorMessage"].as_str().unwrap();
    assert!(message.starts_with("endpoint unreachable"), "{message}");
    assert!(!message.contains("hidden"), "{message}");
}

#[tokio::test]
async fn a_slow_endpoint_times_out_with_status_0() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::options()
        .server_env(&[ALLOW, ("HOOKFLOW_OUTGOING_TIMEOUT_MS", "500")])
        .answering(Reply::json(200, &json!({"late": true})).delay(Duration::from_secs(10)))
        .start(|endpoint| json!({"id": "slow", "url": endpoint.url("/slow"), "method": "POST"}))
        .await;
    let started = Instant::now();
    let (answer, id) = send_ok(&server, &json!({"webhookId": "slow", "data": {}})).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered before the endpoint did"
    );
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 0, "data": null, "error": true})
    );
    endpoint.wait_for_requests(1, Duration::from_secs(5)).await;
    let record = invocation(&server, &id).await;
    let message = record["errorMessage"].as_str().unwrap();
    assert!(message.contains("did not answer within"), "{message}");
}

#[tokio::test]
async fn triggers_that_do_not_fit_are_refused_before_any_call() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(|endpoint| {
        json!({
            "id": "strict",
            "url": endpoint.url("/strict"),
            "method": "POST",
            "headers": {"Authorization": "Bearer sk-prefilled-123", "X-Tag": ""},
            "queryParams": ["page"],
            "schema": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "items": {"type": "array", "items": {"type": "integer"}}
                }
            }
        })
    })
    .await;
    put(
        &server,
        &json!({"id": "binary", "url": endpoint.url("/bin"), "method": "PUT", "payloadEncoding": "base64"}),
    )
    .await;
    put(
        &server,
        &json!({"id": "switched-off", "url": endpoint.url("/off"), "method": "POST", "enabled": false}),
    )
    .await;
    let valid = json!({"name": "x", "items": [1, 2]});
    let cases = [
        (
            json!({"webhookId": "no-such-hook", "data": valid}),
            404,
            "outgoing_webhook_not_found",
            "no-such-hook",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "queryParams": {"limit": 5}}),
            400,
            "query_param_not_allowed",
            "limit",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "headers": {"X-Other": "v"}}),
            400,
            "header_not_allowed",
            "X-Other",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "headers": {"authorization": "Bearer mine"}}),
            400,
            "header_not_allowed",
            "pre-filled",
        ),
        (
            json!({"webhookId": "strict", "data": {"name": "x", "items": [1, "two"]}}),
            400,
            "schema_violation",
            "/items/1",
        ),
        (
            json!({"webhookId": "strict", "data": {"items": []}}),
            400,
            "schema_violation",
            "name",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "headers": ["X-Tag"]}),
            400,
            "invalid_headers",
            "headers",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "headers": {"X-Tag": "bad\r\nvalue"}}),
            400,
            "invalid_headers",
            "X-Tag",
        ),
        (
            json!({"webhookId": "binary", "data": "!!! not base64 !!!"}),
            400,
            "invalid_base64",
            "base64",
        ),
        (
            json!({"webhookId": "binary", "data": {"an": "object"}}),
            400,
            "invalid_base64",
            "base64",
        ),
        (
            json!({"data": valid}),
            400,
            "webhook_id_missing",
            "webhookId",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "callback": "x"}),
            400,
            "unknown_field",
            "callback",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "async": "maybe"}),
            400,
            "invalid_async",
            "async",
        ),
        (
            json!({"webhookId": "switched-off", "data": {}}),
            409,
            "outgoing_webhook_disabled",
            "switched-off",
        ),
    ];
    for (trigger, status, code, mentions) in cases {
        let (got, answer) = send(&server, &trigger).await;
        assert_eq!(answer["error"]["code"], code, "{trigger} -> {answer}");
        assert_error(got, &answer, status, code);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{trigger}: {message}");
    }
    assert!(endpoint.requests().is_empty());
    assert_eq!(endpoint.accepted(), 0, "no call was made");
    for id in ["strict", "binary", "switched-off"] {
        assert_eq!(invocations(&server, id).await, Vec::<Value>::new(), "{id}");
    }
    // The same triggers fit once corrected.
    let (answer, _) = send_ok(
        &server,
        &json!({"webhookId": "strict", "data": valid, "headers": {"X-Tag": "t"}, "queryParams": {"page": 1}}),
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(endpoint.requests().len(), 1);
}

#[tokio::test]
async fn content_type_comes_from_the_registration_the_trigger_or_the_data() {
    // Content-Type listed as one a trigger may set.
    let OutgoingFixture { server, endpoint, .. } = OutgoingFixture::start(|endpoint| {
        json!({"id": "typed", "url": endpoint.url("/t"), "method": "POST", "headers": {"Content-Type": ""}})
    })
    .await;
    send_ok(
        &server,
        &json!({"webhookId": "typed", "data": "<a/>", "headers": {"content-type": "application/xml"}}),
    )
    .await;
    send_ok(
        &server,
        &json!({"webhookId": "typed", "data": {"json": true}}),
    )
    .await;
    let requests = endpoint.requests();
    assert_eq!(
        requests[0].header_values("content-type"),
        ["application/xml"]
    );
    assert_eq!(requests[0].body, b"<a/>");
    assert_eq!(
        requests[1].header_values("content-type"),
        ["application/json"],
        "not set by the trigger: the data's own type"
    );
    let listed = invocations(&server, "typed").await;
    assert_eq!(listed[0]["request"]["contentType"], "application/json");
    assert_eq!(listed[1]["request"]["contentType"], "application/xml");
}
