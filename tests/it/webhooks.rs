//! Management: webhook.put / webhook.get / webhook.delete, auth, parameter sources.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{ADMIN, Server, assert_error, client, json_of};

fn is_rfc3339_millis(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
}

#[tokio::test]
async fn create_returns_the_documented_fields() {
    let server = Server::start().await;
    let hook = server.create_webhook("webhook.lead.created", &[]).await;
    let uuid = hook["uuid"].as_str().unwrap();
    assert_eq!(uuid.len(), 36);
    let parsed = uuid::Uuid::parse_str(uuid).unwrap();
    assert_eq!(parsed.get_version_num(), 4, "tokens are UUID v4");
    assert_eq!(hook["eventKey"], "webhook.lead.created");
    assert_eq!(
        hook["webhookUrl"],
        format!("{}/api/v3/command/webhook.receive?token={uuid}", server.url)
    );
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["description"], Value::Null);
    assert_eq!(hook["payloadType"], "base64");
    assert_eq!(hook["maxPayloadLength"], 512_000);
    assert!(
        is_rfc3339_millis(&hook["createdAt"]) && hook["createdAt"] == hook["updatedAt"],
        "{hook}"
    );
    let keys: Vec<&str> = hook
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "eventKey",
            "uuid",
            "webhookUrl",
            "enabled",
            "description",
            "payloadType",
            "maxPayloadLength",
            "createdAt",
            "updatedAt"
        ]
    );
}

#[tokio::test]
async fn public_url_setting_is_the_base_of_webhook_url() {
    let server = Server::start_with(&[("HOOKFLOW_PUBLIC_URL", "https://hooks.example.com/")]).await;
    let hook = server.create_webhook("webhook.public", &[]).await;
    assert_eq!(
        hook["webhookUrl"],
        format!(
            "https://hooks.example.com/api/v3/command/webhook.receive?token={}",
            hook["uuid"].as_str().unwrap()
        )
    );
}

#[tokio::test]
async fn parameters_come_from_query_form_or_json() {
    let server = Server::start().await;
    let http = client();
    let url = server.at("/api/v3/command/webhook.put");
    let (s, by_query) = json_of(
        http.post(format!("{url}?eventKey=webhook.by.query"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{by_query}");
    assert_eq!(by_query["eventKey"], "webhook.by.query");
    let (s, by_form) = json_of(
        http.post(&url)
            .bearer_auth(ADMIN)
            .form(&[("eventKey", "webhook.by.form")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(by_form["eventKey"], "webhook.by.form");
    let body = json!({"eventKey": "webhook.by.json", "enabled": false, "maxPayloadLength": 2048, "description": "from JSON"});
    let (s, by_json) = json_of(
        http.post(&url)
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{by_json}");
    assert_eq!(
        (
            &by_json["eventKey"],
            &by_json["enabled"],
            &by_json["maxPayloadLength"],
            &by_json["description"]
        ),
        (
            &json!("webhook.by.json"),
            &json!(false),
            &json!(2048),
            &json!("from JSON")
        )
    );
    // GET works for commands too (PIPEFORCE's command URLs).
    let (s, got) = json_of(
        http.get(server.at("/api/v3/command/webhook.get"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn get_lists_all_or_one() {
    let server = Server::start().await;
    let a = server.create_webhook("webhook.a", &[]).await;
    let b = server
        .create_webhook("webhook.b", &[("description", "second")])
        .await;
    let (s, all) = server.command("webhook.get", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(all, json!([a, b]));
    let (s, one) = server
        .command("webhook.get", &[("uuid", b["uuid"].as_str().unwrap())])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one, b);
    let (s, body) = server
        .command(
            "webhook.get",
            &[("uuid", &uuid::Uuid::new_v4().to_string())],
        )
        .await;
    assert_error(s, &body, 404, "webhook_not_found");
    let (s, body) = server
        .command("webhook.get", &[("uuid", "not-a-uuid")])
        .await;
    assert_error(s, &body, 400, "invalid_uuid");
}

#[tokio::test]
async fn edit_by_uuid_changes_fields_but_never_the_token() {
    let server = Server::start().await;
    let hook = server.create_webhook("webhook.lead.created", &[]).await;
    let uuid = hook["uuid"].as_str().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (s, edited) = server
        .command(
            "webhook.put",
            &[
                ("uuid", uuid),
                ("eventKey", "webhook.changed.key"),
                ("payloadType", "raw"),
                ("enabled", "false"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{edited}");
    assert_eq!(edited["uuid"], uuid);
    assert_eq!(edited["webhookUrl"], hook["webhookUrl"]);
    assert_eq!(edited["eventKey"], "webhook.changed.key");
    assert_eq!(edited["payloadType"], "raw");
    assert_eq!(edited["enabled"], false);
    assert_eq!(edited["createdAt"], hook["createdAt"]);
    assert_ne!(edited["updatedAt"], hook["updatedAt"]);
    let (_, one) = server.command("webhook.get", &[("uuid", uuid)]).await;
    assert_eq!(one, edited);
    // The old key is free again.
    server.create_webhook("webhook.lead.created", &[]).await;
}

#[tokio::test]
async fn put_with_a_new_uuid_creates_with_that_token() {
    let server = Server::start().await;
    let moved = "a29a4f16-989d-48c8-ab54-7b6150733ba1";
    let (s, hook) = server
        .command(
            "webhook.put",
            &[("uuid", moved), ("eventKey", "webhook.moved")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{hook}");
    assert_eq!(hook["uuid"], moved);
    let (s, body) = server
        .command("webhook.put", &[("uuid", "a29a4f16-nope")])
        .await;
    assert_error(s, &body, 400, "invalid_uuid");
    let (s, body) = server
        .command(
            "webhook.put",
            &[("uuid", &uuid::Uuid::new_v4().to_string())],
        )
        .await;
    assert_error(s, &body, 400, "event_key_missing");
}

#[tokio::test]
async fn event_key_rules_and_conflicts() {
    let server = Server::start().await;
    let (s, body) = server.command("webhook.put", &[]).await;
    assert_error(s, &body, 400, "event_key_missing");
    let long = "a".repeat(201);
    for bad in [
        "Webhook.Lead",
        "webhook..x",
        "webhook.lead created",
        "webhook/x",
        "",
        long.as_str(),
    ] {
        let (s, body) = server.command("webhook.put", &[("eventKey", bad)]).await;
        assert_error(s, &body, 400, "invalid_event_key");
    }
    server.create_webhook(&"a".repeat(200), &[]).await;
    let first = server.create_webhook("webhook.taken", &[]).await;
    let (s, body) = server
        .command("webhook.put", &[("eventKey", "webhook.taken")])
        .await;
    assert_error(s, &body, 409, "event_key_taken");
    let other = server.create_webhook("webhook.other", &[]).await;
    let (s, body) = server
        .command(
            "webhook.put",
            &[
                ("uuid", other["uuid"].as_str().unwrap()),
                ("eventKey", "webhook.taken"),
            ],
        )
        .await;
    assert_error(s, &body, 409, "event_key_taken");
    let (_, all) = server.command("webhook.get", &[]).await;
    assert_eq!(
        all.as_array().unwrap().len(),
        3,
        "nothing was created by the refused calls"
    );
    assert!(all.as_array().unwrap().contains(&first));
}

#[tokio::test]
async fn payload_type_and_max_payload_length_are_validated() {
    let server = Server::start().await;
    for (name, value, code) in [
        ("payloadType", "xml", "invalid_payload_type"),
        ("maxPayloadLength", "0", "invalid_max_payload_length"),
        ("maxPayloadLength", "4194305", "invalid_max_payload_length"),
        ("maxPayloadLength", "-1", "invalid_max_payload_length"),
        ("maxPayloadLength", "lots", "invalid_max_payload_length"),
        ("enabled", "maybe", "invalid_enabled"),
    ] {
        let (s, body) = server
            .command("webhook.put", &[("eventKey", "webhook.x"), (name, value)])
            .await;
        assert_error(s, &body, 400, code);
    }
    let hook = server
        .create_webhook(
            "webhook.x",
            &[("payloadType", "IGNORE"), ("maxPayloadLength", "4194304")],
        )
        .await;
    assert_eq!(
        (&hook["payloadType"], &hook["maxPayloadLength"]),
        (&json!("ignore"), &json!(4_194_304))
    );
}

#[tokio::test]
async fn delete_removes_and_then_404s() {
    let server = Server::start().await;
    let hook = server.create_webhook("webhook.gone", &[]).await;
    let uuid = hook["uuid"].as_str().unwrap();
    let (s, deleted) = server.command("webhook.delete", &[("uuid", uuid)]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(deleted, hook);
    let (s, body) = server.command("webhook.delete", &[("uuid", uuid)]).await;
    assert_error(s, &body, 404, "webhook_not_found");
    let (s, body) = server.command("webhook.delete", &[]).await;
    assert_error(s, &body, 400, "uuid_missing");
    let res = client()
        .post(server.at(&format!("/api/v3/command/webhook.receive?token={uuid}")))
        .send()
        .await
        .unwrap();
    let (s, body) = json_of(res).await;
    assert_error(s, &body, 404, "webhook_not_found");
}

#[tokio::test]
async fn management_needs_the_admin_token() {
    let server = Server::start().await;
    let http = client();
    for cmd in [
        "webhook.put",
        "webhook.get",
        "webhook.delete",
        "no.such.command",
    ] {
        let url = server.at(&format!("/api/v3/command/{cmd}?eventKey=webhook.x"));
        let res = http.post(&url).send().await.unwrap();
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        let (s, body) = json_of(res).await;
        assert_error(s, &body, 401, "unauthorized");
        for wrong in [&ADMIN[..ADMIN.len() - 1], "x", &format!("{ADMIN}x")] {
            let (s, body) = json_of(http.post(&url).bearer_auth(wrong).send().await.unwrap()).await;
            assert_error(s, &body, 401, "unauthorized");
        }
        let (s, body) = json_of(
            http.post(&url)
                .basic_auth("admin", Some(ADMIN))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(s, &body, 401, "unauthorized");
    }
    let (_, all) = server.command("webhook.get", &[]).await;
    assert_eq!(all, json!([]), "no unauthenticated call changed anything");
    let (s, body) = server.command("no.such.command", &[]).await;
    assert_error(s, &body, 404, "unknown_command");
}
