//! The registry: `outgoing.put`, `outgoing.get`, `outgoing.delete`, and the rules a registration must meet.

use super::*;

#[tokio::test]
async fn registry_put_get_list_delete_with_values_masked() {
    let secret = new_secret();
    let registration_at = |url: String| {
        json!({
            "id": "crm-create",
            "url": url,
            "method": "post",
            "headers": {"Authorization": "Bearer sk-prefilled-123", "X-Tenant": ""},
            "queryParams": ["page", "lang"],
            "payloadEncoding": "json",
            "secret": secret,
            "description": "Creates a contact in the CRM",
        })
    };
    // The fixture checks the 201.
    let OutgoingFixture {
        server,
        endpoint,
        registered: mut created,
        ..
    } = OutgoingFixture::start(|endpoint| {
        registration_at(endpoint.url("/hooks/create?source=hookflow"))
    })
    .await;
    let url = endpoint.url("/hooks/create?source=hookflow");
    let body = registration_at(url.clone());
    let text = created.to_string();
    assert!(
        !text.contains("sk-prefilled-123") && !text.contains(&secret[6..]),
        "{text}"
    );
    let created_times = take_times(&mut created, &["createdAt", "updatedAt"]);
    assert_eq!(created_times[0], created_times[1]);
    let masked = json!({
        "id": "crm-create",
        "url": url,
        "method": "POST",
        "headers": {"Authorization": "********", "X-Tenant": ""},
        "queryParams": ["page", "lang"],
        "payloadEncoding": "json",
        "enabled": true,
        "signed": true,
        "secret": "********",
        "description": "Creates a contact in the CRM",
    });
    assert_eq!(created, masked);

    // Read back: the same, with the same times.
    let mut one = registration(&server, "crm-create").await;
    assert_eq!(
        take_times(&mut one, &["createdAt", "updatedAt"]),
        created_times
    );
    assert_eq!(one, masked);

    // Replaced: 200, creation time kept; without `secret` the secret stays.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut second = body.clone();
    second.as_object_mut().unwrap().remove("secret");
    second["description"] = json!("v2");
    second["queryParams"] = json!(["page"]);
    let (status, mut replaced) = post_json(&server, "outgoing.put", &second).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    let times = take_times(&mut replaced, &["createdAt", "updatedAt"]);
    assert_eq!(times[0], created_times[0], "createdAt is kept");
    assert!(epoch_millis(&times[1]) > epoch_millis(&created_times[1]));
    let mut want = masked.clone();
    want["description"] = json!("v2");
    want["queryParams"] = json!(["page"]);
    assert_eq!(replaced, want);

    // A second, unsigned registration; the list is sorted by id.
    let (status, mut other) = post_json(
        &server,
        "outgoing.put",
        &json!({"id": "a-first", "url": endpoint.url("/a"), "method": "GET"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    take_times(&mut other, &["createdAt", "updatedAt"]);
    assert_eq!(
        other,
        json!({
            "id": "a-first", "url": endpoint.url("/a"), "method": "GET", "headers": {},
            "queryParams": [], "payloadEncoding": "json", "enabled": true, "signed": false,
        })
    );
    let (status, list) = server.command("outgoing.get", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a-first", "crm-create"]);
    assert!(!list.to_string().contains("sk-prefilled-123"));

    // Delete answers with the (masked) registration; then it is gone.
    let (status, mut deleted) = server
        .command("outgoing.delete", &[("id", "crm-create")])
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    take_times(&mut deleted, &["createdAt", "updatedAt"]);
    assert_eq!(deleted, want);
    for command in ["outgoing.get", "outgoing.delete"] {
        let (status, body) = server.command(command, &[("id", "crm-create")]).await;
        assert_error(status, &body, 404, "outgoing_webhook_not_found");
    }
    let (status, body) = server
        .command("outgoing.get", &[("id", "no such id!")])
        .await;
    assert_error(status, &body, 404, "outgoing_webhook_not_found");
    let (status, body) = server.command("outgoing.delete", &[]).await;
    assert_error(status, &body, 400, "id_missing");
    let (_, list) = server.command("outgoing.get", &[]).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_registrations_are_refused_with_a_stable_code() {
    let server = Server::start_with(&[ALLOW, FAST_RETRIES]).await;
    let good = json!({"id": "ok-id", "url": "http://127.0.0.1:9/x", "method": "POST"});
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases = [
        (without("id"), "id_missing"),
        (without("url"), "url_missing"),
        (without("method"), "method_missing"),
        (with("id", json!("has spaces!")), "invalid_id"),
        (with("url", json!("not a url")), "invalid_url"),
        (with("url", json!("ftp://127.0.0.1/file")), "invalid_url"),
        (with("url", json!("/relative/path")), "invalid_url"),
        (
            with("url", json!("http://user:pass@127.0.0.1:9/x")),
            "invalid_url",
        ),
        (
            with("url", json!("http://127.0.0.1:9/x#part")),
            "invalid_url",
        ),
        (with("method", json!("FETCH")), "invalid_method"),
        (with("method", json!(5)), "invalid_method"),
        (with("secret", json!("plain-text-secret")), "invalid_secret"),
        (with("secret", json!("whsec_!!!")), "invalid_secret"),
        (with("secret", json!("whsec_c2hvcnQ=")), "invalid_secret"),
        (with("secret", json!(42)), "invalid_secret"),
        (with("schema", json!({"type": 12})), "invalid_schema"),
        (with("schema", json!("an object please")), "invalid_schema"),
        (
            with("payloadEncoding", json!("hex")),
            "invalid_payload_encoding",
        ),
        (with("headers", json!(["Authorization"])), "invalid_headers"),
        (with("headers", json!({"Host": "evil"})), "invalid_headers"),
        (
            with("headers", json!({"webhook-signature": "x"})),
            "invalid_headers",
        ),
        (
            with("headers", json!({"X-Bad": "line\nbreak"})),
            "invalid_headers",
        ),
        (with("headers", json!({"X-Num": 5})), "invalid_headers"),
        (with("queryParams", json!("page")), "invalid_query_params"),
        (with("queryParams", json!([""])), "invalid_query_params"),
        (with("enabled", json!("yes")), "invalid_enabled"),
        (with("callbackUrl", json!("http://x/")), "unknown_field"),
    ];
    for (body, code) in cases {
        let (status, answer) = post_json(&server, "outgoing.put", &body).await;
        assert_eq!(answer["error"]["code"], code, "{body} -> {answer}");
        assert_error(status, &answer, 400, code);
    }
    // Not JSON at all.
    let res = client()
        .post(server.at("/api/v3/command/outgoing.put"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(res).await;
    assert_error(status, &answer, 400, "invalid_json");
    let (_, list) = server.command("outgoing.get", &[]).await;
    assert_eq!(list, json!([]), "nothing was stored");
    // Without the admin token: nothing.
    let res = client()
        .post(server.at("/api/v3/command/outgoing.put"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
