//! Standard Webhooks signatures, checked by the independent Python library, and secret rotation.

use super::*;

#[tokio::test]
async fn signed_calls_verify_with_the_standard_webhooks_library() {
    let Some(python) = venv_python() else {
        return;
    };
    let secret = new_secret();
    let OutgoingFixture {
        server,
        endpoint,
        registered: stored,
        ..
    } = OutgoingFixture::start(|endpoint| {
        json!({"id": "signed", "url": endpoint.url("/signed"), "method": "POST", "secret": secret})
    })
    .await;
    assert_eq!(stored["signed"], true);
    assert_eq!(stored["secret"], "********");
    let (_, id) = send_ok(
        &server,
        &json!({"webhookId": "signed", "data": {"amount": 12.5, "currency": "EUR"}}),
    )
    .await;
    let request = &endpoint.requests()[0];
    assert_eq!(request.header("webhook-id"), Some(id.as_str()));
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - timestamp).abs() < 60, "{timestamp} vs {now}");
    let entries = signature_entries(request);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].starts_with("v1,"));
    assert!(
        verifies(&python, &secret, request).await,
        "the library accepts the call"
    );
    // The verifier really checks: a wrong secret or a changed body fail.
    assert!(!verifies(&python, &new_secret(), request).await);
    let mut tampered = request.clone();
    tampered.body = br#"{"amount":1200,"currency":"EUR"}"#.to_vec();
    assert!(!verifies(&python, &secret, &tampered).await);
    let record = invocation(&server, &id).await;
    assert_eq!(record["request"]["signed"], true);
    assert_eq!(
        record["request"]["headers"],
        json!([
            "Content-Type",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature"
        ])
    );

    // Rotation: the previous secret keeps signing alongside the new one.
    let rotated = new_secret();
    let answer = put(
        &server,
        &json!({"id": "signed", "url": endpoint.url("/signed"), "method": "POST", "secret": rotated}),
    )
    .await;
    assert_eq!(answer["secret"], "********");
    let retire = answer["previousSecretsRetireAt"]
        .as_array()
        .expect("the retiring secret is announced");
    assert_eq!(retire.len(), 1);
    let grace = epoch_millis(&retire[0]) - epoch_millis(&answer["updatedAt"]);
    assert_eq!(grace, 86_400_000, "the default grace period is a day");
    send_ok(&server, &json!({"webhookId": "signed", "data": {"n": 2}})).await;
    let request = &endpoint.requests()[1];
    assert_eq!(signature_entries(request).len(), 2);
    assert!(
        verifies(&python, &secret, request).await,
        "the old secret verifies"
    );
    assert!(
        verifies(&python, &rotated, request).await,
        "the new secret verifies"
    );
    assert!(!verifies(&python, &new_secret(), request).await);

    // A generated secret is shown once, then masked.
    let answer = put(
        &server,
        &json!({"id": "signed", "url": endpoint.url("/signed"), "method": "POST", "secret": "generate"}),
    )
    .await;
    let generated = answer["secret"].as_str().unwrap().to_owned();
    assert!(generated.starts_with("whsec_"), "{answer}");
    assert_eq!(registration(&server, "signed").await["secret"], "********");
    send_ok(&server, &json!({"webhookId": "signed", "data": {"n": 3}})).await;
    let request = &endpoint.requests()[2];
    assert_eq!(signature_entries(request).len(), 3);
    for key in [&generated, &rotated, &secret] {
        assert!(verifies(&python, key, request).await);
    }

    // `secret: null` turns signing off.
    let answer = put(
        &server,
        &json!({"id": "signed", "url": endpoint.url("/signed"), "method": "POST", "secret": null}),
    )
    .await;
    assert_eq!(answer["signed"], false);
    assert!(answer.get("secret").is_none(), "{answer}");
    send_ok(&server, &json!({"webhookId": "signed", "data": {"n": 4}})).await;
    let request = &endpoint.requests()[3];
    for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert_eq!(request.header(header), None, "{header}");
    }
}

#[tokio::test]
async fn without_a_grace_period_only_the_new_secret_signs() {
    let Some(python) = venv_python() else {
        return;
    };
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::options()
        .server_env(&[ALLOW, ("HOOKFLOW_OUTGOING_SECRET_GRACE_SECONDS", "0")])
        .start_unregistered()
        .await;
    let (old, new) = (new_secret(), new_secret());
    for secret in [&old, &new] {
        put(
            &server,
            &json!({"id": "rotated", "url": endpoint.url("/r"), "method": "POST", "secret": secret}),
        )
        .await;
    }
    assert!(
        registration(&server, "rotated")
            .await
            .get("previousSecretsRetireAt")
            .is_none()
    );
    send_ok(&server, &json!({"webhookId": "rotated", "data": {"x": 1}})).await;
    let request = &endpoint.requests()[0];
    assert_eq!(signature_entries(request).len(), 1);
    assert!(verifies(&python, &new, request).await);
    assert!(!verifies(&python, &old, request).await);
}
