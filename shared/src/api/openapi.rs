//! `GET /api/v3/openapi.json`: the OpenAPI 3.1 document of this API.
//!
//! The document is kept by hand in `openapi.json` beside this file, one path
//! item per route and command. The tests below hold it to the router (every
//! command is documented, every documented operation is routed, with exactly
//! the methods the router serves) and check every example against its
//! schema; `tests/it/openapi.rs` validates it as OpenAPI 3.1, and
//! Schemathesis (`tests/schemathesis.sh`) checks the answers against it.

use bytes::Bytes;
use http::{Response, StatusCode};

use super::json_text_response;

/// The document, as served.
pub(super) const DOCUMENT: &str = include_str!("openapi.json");

/// The answer to `GET /api/v3/openapi.json`.
pub(super) fn document() -> Response<Bytes> {
    json_text_response(StatusCode::OK, Bytes::from_static(DOCUMENT.as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use http::{Method, Request};
    use serde_json::Value;

    use super::*;
    use crate::api::admin::Command;
    use crate::api::{
        COMMAND_PREFIX, Gateway, HEALTH_PATH, OPENAPI_PATH, RECEIVE_ALIAS_PATH, RECEIVE_PATH,
        RESULT_PATH,
    };
    use crate::config::Settings;
    use crate::ports::Ports;

    const ADMIN: &str = "admin-token-of-the-openapi-test";

    /// The routes the router answers besides `/api/v3/command/<name>`.
    const FIXED_ROUTES: &[&str] = &[
        RECEIVE_PATH,
        RECEIVE_ALIAS_PATH,
        RESULT_PATH,
        OPENAPI_PATH,
        HEALTH_PATH,
    ];
    /// The methods probed on every route: what OpenAPI can describe, less `TRACE`.
    const PROBED: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

    fn doc() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    fn gateway() -> Gateway {
        let settings =
            Settings::from_lookup(|name| (name == "HOOKFLOW_ADMIN_TOKEN").then(|| ADMIN.into()))
                .unwrap();
        crate::wiring::gateway(Ports::memory(), settings)
    }

    async fn answer(gateway: &Gateway, method: &str, path: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap())
            .uri(path)
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Bytes::new())
            .unwrap();
        let res = gateway.handle(req).await;
        let body = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
        (res.status(), body)
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_admin_bearer_scheme() {
        let doc = doc();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(
            doc["components"]["securitySchemes"]["adminToken"],
            serde_json::json!({"type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["adminToken"]["description"]})
        );
        // The bearer scheme guards the commands, and only them.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let security = &op["security"];
                if path.starts_with(COMMAND_PREFIX) && path != RECEIVE_PATH {
                    assert_eq!(
                        security,
                        &serde_json::json!([{"adminToken": []}]),
                        "{method} {path}"
                    );
                } else {
                    assert_eq!(security, &serde_json::json!([]), "{method} {path}");
                }
            }
        }
    }

    #[test]
    fn every_command_and_route_is_documented() {
        let doc = doc();
        let paths = doc["paths"].as_object().unwrap();
        let routed: BTreeSet<String> = Command::ALL
            .iter()
            .map(|c| format!("{COMMAND_PREFIX}{}", c.name()))
            .chain(FIXED_ROUTES.iter().map(|r| r.to_string()))
            .collect();
        let documented: BTreeSet<String> = paths.keys().cloned().collect();
        assert_eq!(
            documented, routed,
            "documented paths (left) and routed ones (right)"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_documented_operation_is_routed_with_exactly_its_methods() {
        let doc = doc();
        let gateway = gateway();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in PROBED {
                let (status, body) = answer(&gateway, method, path).await;
                let code = body["error"]["code"].as_str().unwrap_or_default();
                if item.get(*method).is_some() {
                    operations += 1;
                    assert!(
                        !matches!(code, "route_not_found" | "unknown_command")
                            && status != StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {path} is documented but answered {status} {body}"
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {path} is not documented but answered {body}"
                    );
                }
            }
        }
        // GET and POST on the commands, both receive paths and the result;
        // GET only on this document and the health check.
        assert_eq!(operations, 2 * (Command::ALL.len() + 3) + 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_document_is_served_without_a_token_and_only_to_get() {
        let gateway = gateway();
        let get = Request::get(OPENAPI_PATH).body(Bytes::new()).unwrap();
        let res = gateway.handle(get).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.body().as_ref(), DOCUMENT.as_bytes());

        let post = Request::post(OPENAPI_PATH).body(Bytes::new()).unwrap();
        let res = gateway.handle(post).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["allow"], "GET");
        let result = Request::put(RESULT_PATH).body(Bytes::new()).unwrap();
        assert_eq!(gateway.handle(result).await.headers()["allow"], "GET, POST");
    }

    /// The document's examples, each with where it is and the schema it must
    /// satisfy: `example`/`examples` beside a `schema` (media types and
    /// parameters), and the `examples` list of a schema itself.
    fn examples_in(node: &Value, at: &str, found: &mut Vec<(String, Value, Value)>) {
        match node {
            Value::Object(map) => {
                if let Some(schema) = map.get("schema") {
                    if let Some(example) = map.get("example") {
                        found.push((format!("{at}/example"), schema.clone(), example.clone()));
                    }
                    if let Some(Value::Object(named)) = map.get("examples") {
                        for (name, example) in named {
                            let value = example.get("value").cloned().unwrap_or(Value::Null);
                            found.push((format!("{at}/examples/{name}"), schema.clone(), value));
                        }
                    }
                } else if let Some(Value::Array(list)) = map.get("examples") {
                    for (i, example) in list.iter().enumerate() {
                        found.push((format!("{at}/examples/{i}"), node.clone(), example.clone()));
                    }
                }
                for (key, child) in map {
                    examples_in(child, &format!("{at}/{key}"), found);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    examples_in(child, &format!("{at}/{i}"), found);
                }
            }
            _ => {}
        }
    }

    /// Validates `example` against `schema`, whose `$ref`s point into the
    /// document's components.
    fn check(doc: &Value, schema: &Value, example: &Value) -> Result<(), String> {
        let mut schema = match schema {
            Value::Object(map) => Value::Object(map.clone()),
            Value::Bool(true) => serde_json::json!({}),
            other => return Err(format!("not a schema object: {other}")),
        };
        schema["components"] = doc["components"].clone();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| format!("the schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(example)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    #[test]
    fn every_example_validates_against_its_schema() {
        let doc = doc();
        let mut found = Vec::new();
        examples_in(&doc, "#", &mut found);
        // The error answers (one per status), the webhook, pipeline,
        // registration, trigger, send answer, invocation and result schemas,
        // and the parameters: so few would mean the walk missed them.
        assert!(found.len() >= 30, "only {} examples found", found.len());
        let failures: Vec<String> = found
            .iter()
            .filter_map(|(at, schema, example)| {
                check(&doc, schema, example)
                    .err()
                    .map(|e| format!("{at}: {e}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn an_example_that_breaks_its_schema_is_caught() {
        let doc = doc();
        let webhook = serde_json::json!({"$ref": "#/components/schemas/Webhook"});
        let good = doc["components"]["schemas"]["Webhook"]["examples"][0].clone();
        assert_eq!(check(&doc, &webhook, &good), Ok(()));
        let mut bad = good.clone();
        bad["maxPayloadLength"] = Value::from(4_194_305);
        assert!(check(&doc, &webhook, &bad).is_err());
        let mut unknown_field = good;
        unknown_field["token"] = Value::from("never shown");
        assert!(check(&doc, &webhook, &unknown_field).is_err());
        let mut bad_uuid = doc["components"]["schemas"]["Result"]["examples"][0].clone();
        bad_uuid["correlationId"] = Value::from("not-a-uuid");
        let result = serde_json::json!({"$ref": "#/components/schemas/Result"});
        assert!(check(&doc, &result, &bad_uuid).is_err());
    }
}
