//! The OpenAPI document as `serve` answers it, checked as OpenAPI 3.1 by a
//! validator from PyPI (openapi-spec-validator, in tests/requirements.txt).
//! The core's unit tests hold it to the router and check its examples;
//! Schemathesis (tests/schemathesis.sh) checks the answers against it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{Server, client, venv_python};

/// The validator's verdict on `document`: its problems, one a line, if any.
fn validate(python: &Path, document: &str) -> Result<(), String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/validate_openapi.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the validator");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(document.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_3_1() {
    let Some(python) = venv_python() else {
        return;
    };
    let server = Server::start().await;
    // No admin token: the document is public, like the receive and result routes.
    let res = client()
        .get(server.at("/api/v3/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let text = res.text().await.unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    if let Err(problems) = validate(&python, &text) {
        panic!("openapi.json is not valid OpenAPI 3.1:\n{problems}");
    }

    // The validator refuses what is not OpenAPI: a parameter in a place
    // OpenAPI 3.1 has not, a reference to a schema that does not exist.
    let mut body_parameter = document.clone();
    body_parameter["components"]["parameters"]["correlationId"]["in"] = Value::from("body");
    assert!(validate(&python, &body_parameter.to_string()).is_err());
    let mut dangling = document;
    dangling["paths"]["/api/v3/result"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"]["$ref"] = Value::from("#/components/schemas/NoSuchSchema");
    assert!(validate(&python, &dangling.to_string()).is_err());
}
