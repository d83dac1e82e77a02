//! The SSRF guard: internal destinations without the allow list, loopback with it, redirects not followed.

use super::*;

#[tokio::test]
async fn without_the_allow_list_internal_destinations_are_refused() {
    // A name is checked when the call resolves it; registering it succeeds
    // (the fixture checks the 201).
    let OutgoingFixture { server, endpoint, .. } = OutgoingFixture::options()
        .server_env(&[FAST_RETRIES])
        .start(|endpoint| {
            json!({"id": "by-name", "url": format!("http://localhost:{}/hook", endpoint.port), "method": "POST"})
        })
        .await;
    let port = endpoint.port;
    let (answer, id) = send_ok(&server, &json!({"webhookId": "by-name", "data": {"a": 1}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 0, "data": null, "error": true})
    );
    let record = invocation(&server, &id).await;
    assert_eq!(record["state"], "failed");
    let message = record["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("destination not allowed") && message.contains("localhost"),
        "{message}"
    );
    // Also asynchronously: refused on every attempt, never connected.
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "by-name", "data": {"a": 2}, "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let record = finished_invocation(&server, &reference_id(&answer)).await;
    assert_eq!(record["state"], "failed", "{record}");
    assert!(
        record["errorMessage"]
            .as_str()
            .unwrap()
            .contains("destination not allowed"),
        "{record}"
    );
    assert_eq!(endpoint.accepted(), 0, "no connection was made");

    // Addresses written into the URL are refused when registering.
    for url in [
        format!("http://127.0.0.1:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        format!("http://[::1]:{port}/"),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://224.0.0.1/".to_owned(),
        // Other spellings of loopback, normalised by the URL parser.
        "http://2130706433/".to_owned(),
        "http://0x7f.1/".to_owned(),
        "http://[::ffff:7f00:1]/".to_owned(),
    ] {
        let (status, body) = post_json(
            &server,
            "outgoing.put",
            &json!({"id": "internal", "url": url, "method": "GET"}),
        )
        .await;
        assert_error(status, &body, 400, "destination_not_allowed");
        let (_, list) = server.command("outgoing.get", &[]).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{url} was not stored");
    }
    assert_eq!(endpoint.accepted(), 0);
}

#[tokio::test]
async fn with_the_allow_list_loopback_works_and_redirects_are_not_followed() {
    let OutgoingFixture { server, endpoint, .. } = OutgoingFixture::start(|endpoint| {
        json!({"id": "by-name", "url": format!("http://localhost:{}/hook", endpoint.port), "method": "POST"})
    })
    .await;
    let elsewhere = Endpoint::start().await;
    let (answer, id) = send_ok(&server, &json!({"webhookId": "by-name", "data": {"a": 1}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 200, "data": {"ok": true}, "error": false})
    );
    assert_eq!(endpoint.requests()[0].path, "/hook");

    // A redirect is the answer: the Location is not called.
    put(
        &server,
        &json!({"id": "moved", "url": endpoint.url("/old"), "method": "POST"}),
    )
    .await;
    endpoint.script([Reply::status(302).header("location", &elsewhere.url("/new"))]);
    let (answer, id) = send_ok(&server, &json!({"webhookId": "moved", "data": {"a": 1}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 302, "data": null, "error": true})
    );
    assert_eq!(endpoint.requests().len(), 2);
    assert_eq!(elsewhere.requests().len(), 0);
    assert_eq!(elsewhere.accepted(), 0);
}
