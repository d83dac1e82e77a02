//! `invocation.resend`: a recorded invocation's request sent again as a new
//! invocation linked to the first.

use super::*;

#[tokio::test]
async fn a_resend_calls_the_endpoint_again_and_both_records_link() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(|endpoint| {
        json!({
            "id": "resent",
            "url": endpoint.url("/hook?fixed=1"),
            "method": "PUT",
            "headers": {"Authorization": "Bearer sk-prefilled-123", "X-Request-Tag": ""},
            "queryParams": ["page"],
        })
    })
    .await;
    endpoint.script([
        Reply::json(503, &json!({"busy": true})),
        Reply::json(200, &json!({"seen": 2})),
    ]);
    let (status, first) = send(
        &server,
        &json!({
            "webhookId": "resent",
            "data": {"hello": "world"},
            "headers": {"X-Request-Tag": "tag-secret-value"},
            "queryParams": {"page": "7"},
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["status"], 503);
    let first_id = reference_id(&first);

    let (status, again) = server
        .command("invocation.resend", &[("referenceId", &first_id)])
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let again_id = reference_id(&again);
    assert_ne!(again_id, first_id);
    assert_eq!(
        again,
        json!({"referenceId": again_id, "status": 200, "data": {"seen": 2}, "error": false})
    );

    let calls = endpoint.wait_for_requests(2, Duration::from_secs(5)).await;
    assert_eq!(calls.len(), 2, "the endpoint was called a second time");
    for call in &calls {
        assert_eq!(call.method, "PUT");
        assert_eq!(call.path, "/hook?fixed=1&page=7");
        assert_eq!(call.json(), json!({"hello": "world"}));
        assert_eq!(
            call.header("authorization"),
            Some("Bearer sk-prefilled-123")
        );
        assert_eq!(call.header("x-request-tag"), Some("tag-secret-value"));
        assert_eq!(call.header("content-type"), Some("application/json"));
    }

    let original = invocation(&server, &first_id).await;
    let resent = invocation(&server, &again_id).await;
    assert_eq!(resent["resendOf"], first_id.as_str(), "{resent}");
    assert_eq!(original.get("resendOf"), None, "{original}");
    assert_eq!(original["status"], 503, "the first stays as it was");
    assert_eq!(resent["request"], original["request"], "the same request");
    assert_eq!(
        (&resent["state"], &resent["status"], &resent["caller"]),
        (&json!("succeeded"), &json!(200), &json!("admin"))
    );
    for record in [&original, &resent] {
        let text = record.to_string();
        assert!(
            !text.contains("tag-secret-value")
                && !text.contains("sk-prefilled-123")
                && !text.contains("world"),
            "no header value or body is shown: {text}"
        );
    }
    let listed = invocations(&server, "resent").await;
    assert_eq!(listed.len(), 2, "both records exist");
}

#[tokio::test]
async fn an_asynchronous_invocation_is_resent_asynchronously() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(
        |endpoint| json!({"id": "later", "url": endpoint.url("/later"), "method": "POST"}),
    )
    .await;
    let trigger = json!({"webhookId": "later", "data": {"n": 1}, "async": true});
    let (status, first) = send(&server, &trigger).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let first_id = reference_id(&first);
    assert_eq!(
        finished_invocation(&server, &first_id).await["state"],
        "succeeded"
    );

    let (status, again) = server
        .command("invocation.resend", &[("referenceId", &first_id)])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    let again_id = reference_id(&again);
    assert_eq!(
        again,
        json!({"referenceId": again_id, "status": "processing", "data": null, "error": false})
    );
    let resent = finished_invocation(&server, &again_id).await;
    assert_eq!(resent["state"], "succeeded", "{resent}");
    assert_eq!(resent["async"], true);
    assert_eq!(resent["resendOf"], first_id.as_str());
    let calls = endpoint.wait_for_requests(2, Duration::from_secs(5)).await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].body, calls[0].body);
    assert_eq!(calls[1].header("webhook-id"), None, "not signed: no secret");
}

#[tokio::test]
async fn a_resend_is_refused_for_an_unknown_invocation_or_a_disabled_webhook() {
    let OutgoingFixture {
        server,
        endpoint,
        id,
        ..
    } = OutgoingFixture::start(
        |endpoint| json!({"id": "switchable", "url": endpoint.url("/s"), "method": "POST"}),
    )
    .await;
    let (status, body) = server.command("invocation.resend", &[]).await;
    assert_error(status, &body, 400, "reference_id_missing");
    for unknown in ["9b1f3c2e-8d4a-4f6b-a1c2-3d4e5f6a7b8c", "not-a-uuid"] {
        let (status, body) = server
            .command("invocation.resend", &[("referenceId", unknown)])
            .await;
        assert_error(status, &body, 404, "invocation_not_found");
    }
    let (_, first) = send(&server, &json!({"webhookId": id})).await;
    let first_id = reference_id(&first);
    let mut registration = registration(&server, &id).await;
    registration["enabled"] = json!(false);
    for field in ["createdAt", "updatedAt", "signed"] {
        registration.as_object_mut().unwrap().remove(field);
    }
    put(&server, &registration).await;
    let (status, body) = server
        .command("invocation.resend", &[("referenceId", &first_id)])
        .await;
    assert_error(status, &body, 409, "outgoing_webhook_disabled");
    assert_eq!(endpoint.requests().len(), 1, "nothing sent again");
}
