//! Invocation records (`invocation.get`): who triggered what, when, and the outcome.

use super::*;

#[tokio::test]
async fn invocation_records_tell_who_what_when_and_the_outcome() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(|endpoint| {
        json!({
            "id": "audited",
            "url": endpoint.url("/audit?fixed=1"),
            "method": "POST",
            "headers": {"Authorization": "Bearer sk-prefilled-123", "X-Request-Tag": ""},
            "queryParams": ["page"],
        })
    })
    .await;
    let url = endpoint.url("/audit?fixed=1");
    endpoint.script([Reply::json(200, &json!({"seen": 1}))]);
    let before = Instant::now();
    let (_, first) = send_ok(
        &server,
        &json!({
            "webhookId": "audited",
            "data": {"hello": "world"},
            "headers": {"X-Request-Tag": "tag-secret-value"},
            "queryParams": {"page": "7"},
        }),
    )
    .await;
    let mut record = invocation(&server, &first).await;
    let text = record.to_string();
    assert!(
        !text.contains("tag-secret-value") && !text.contains("sk-prefilled-123"),
        "{text}"
    );
    let times = take_times(&mut record, &["createdAt", "updatedAt", "expiresAt"]);
    assert_eq!(
        epoch_millis(&times[2]) - epoch_millis(&times[0]),
        259_200_000,
        "kept for the default 3 days"
    );
    assert!(epoch_millis(&times[1]) >= epoch_millis(&times[0]));
    let duration = record["durationMs"].as_u64().expect("durationMs");
    assert!(duration <= before.elapsed().as_millis() as u64 + 1000);
    let attempts = record["attempts"].as_array().expect("attempts").clone();
    assert_eq!(attempts.len(), 1);
    assert!(is_rfc3339_millis(&attempts[0]["at"]));
    assert_eq!(
        record,
        json!({
            "referenceId": first,
            "webhookId": "audited",
            "caller": "admin",
            "async": false,
            "request": {
                "method": "POST",
                "url": url,
                "queryParams": ["page"],
                "headers": ["Authorization", "X-Request-Tag", "Content-Type"],
                "bodyBytes": 17,
                "contentType": "application/json",
                "signed": false,
            },
            "state": "succeeded",
            "status": 200,
            "error": false,
            "data": {"seen": 1},
            "durationMs": duration,
            "attempts": [{"at": attempts[0]["at"], "status": 200, "durationMs": attempts[0]["durationMs"]}],
        })
    );

    // Two more; listing by webhook gives the newest first.
    let mut ids = vec![first];
    for n in 0..2 {
        // Distinct creation times (millisecond resolution) for a stable order.
        tokio::time::sleep(Duration::from_millis(20)).await;
        ids.push(
            send_ok(&server, &json!({"webhookId": "audited", "data": {"n": n}}))
                .await
                .1,
        );
    }
    let listed: Vec<String> = invocations(&server, "audited")
        .await
        .iter()
        .map(|r| r["referenceId"].as_str().unwrap().to_owned())
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    let (status, limited) = server
        .command(
            "invocation.get",
            &[("webhookId", "audited"), ("limit", "2")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let limited: Vec<&str> = limited
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["referenceId"].as_str().unwrap())
        .collect();
    assert_eq!(limited, newest_first[..2]);
    assert_eq!(
        invocations(&server, "other-hook").await,
        Vec::<Value>::new()
    );

    // Errors.
    let (status, body) = server
        .command(
            "invocation.get",
            &[("referenceId", &uuid::Uuid::new_v4().to_string())],
        )
        .await;
    assert_error(status, &body, 404, "invocation_not_found");
    let (status, body) = server
        .command("invocation.get", &[("referenceId", "not-a-uuid")])
        .await;
    assert_error(status, &body, 404, "invocation_not_found");
    let (status, body) = server
        .command(
            "invocation.get",
            &[("webhookId", "audited"), ("limit", "0")],
        )
        .await;
    assert_error(status, &body, 400, "invalid_limit");
    let (status, body) = server.command("invocation.get", &[]).await;
    assert_error(status, &body, 400, "reference_id_missing");
}
