//! `hookflow command`: PIPEFORCE's `pi command`, and the generated admin token.

use std::process::Command;

use serde_json::Value;

use crate::harness::{ADMIN, Server};

pub(crate) fn hookflow(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(args)
        .env_remove("HOOKFLOW_ADMIN_TOKEN")
        .env_remove("HOOKFLOW_URL")
        .envs(env.iter().copied())
        .output()
        .expect("run hookflow");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn command_prints_the_answer_and_fails_on_errors() {
    let server = Server::start().await;
    let env = [
        ("HOOKFLOW_ADMIN_TOKEN", ADMIN),
        ("HOOKFLOW_URL", server.url.as_str()),
    ];
    let (code, out, err) = hookflow(
        &[
            "command",
            "webhook.put",
            "eventKey=webhook.lead.created",
            "description=via cli",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(created["eventKey"], "webhook.lead.created");
    assert_eq!(created["description"], "via cli");
    let uuid = created["uuid"].as_str().unwrap();

    let (code, out, _) = hookflow(&["command", "webhook.get", &format!("uuid={uuid}")], &env);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), created);

    let (code, out, err) = hookflow(&["command", "webhook.put", "eventKey=Not Valid"], &env);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("invalid_event_key") && err.contains("HTTP 400"),
        "{err}"
    );

    let (code, _, err) = hookflow(&["command", "webhook.put", "eventKey"], &env);
    assert_eq!(code, 1);
    assert!(err.contains("key=value"), "{err}");

    let (code, _, err) = hookflow(
        &[
            "command",
            "webhook.get",
            "--token",
            "wrong-token-0123456789",
        ],
        &[("HOOKFLOW_URL", &server.url)],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("unauthorized") && err.contains("HTTP 401"),
        "{err}"
    );

    let (code, _, err) = hookflow(
        &["command", "webhook.get", "--url", "http://127.0.0.1:9"],
        &[("HOOKFLOW_ADMIN_TOKEN", ADMIN)],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach"), "{err}");
}

#[tokio::test]
async fn serve_generates_keeps_and_uses_an_admin_token() {
    // An empty HOOKFLOW_ADMIN_TOKEN counts as unset: serve generates one.
    let mut server = Server::start_with(&[("HOOKFLOW_ADMIN_TOKEN", "")]).await;
    let token_file = server.dir.join("admin-token");
    let token = std::fs::read_to_string(&token_file).expect("token kept in the data dir");
    assert!(token.len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let dir = server.dir.to_str().unwrap().to_owned();
    let (code, out, err) = hookflow(
        &[
            "command",
            "webhook.put",
            "eventKey=webhook.local",
            "--data-dir",
            &dir,
        ],
        &[("HOOKFLOW_URL", &server.url)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("webhook.local"));
    let (status, _) = server.command("webhook.get", &[]).await;
    assert_eq!(
        status.as_u16(),
        401,
        "the fixed test token is not valid on this server"
    );

    server.stop().await;
    server.restart().await;
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        token,
        "the same token after a restart"
    );
    let (code, _, err) = hookflow(
        &["command", "webhook.get", "--data-dir", &dir],
        &[("HOOKFLOW_URL", &server.url)],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn bad_settings_stop_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = hookflow(
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[("HOOKFLOW_RECEIVE_WAIT_MS", "soon")],
    );
    assert_eq!(code, 1);
    assert!(err.contains("HOOKFLOW_RECEIVE_WAIT_MS"), "{err}");
}

/// Every `HOOKFLOW_*` name in the text, once each.
fn setting_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (at, _) in text.match_indices("HOOKFLOW_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.len() > "HOOKFLOW_".len() {
            names.insert(name);
        }
    }
    names
}

/// The README section that starts with `heading`, up to the next `## `.
fn readme_section(heading: &str) -> String {
    let readme = include_str!("../../README.md");
    let start = readme.find(heading).expect("section");
    let rest = &readme[start + heading.len()..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
}

#[test]
fn serve_help_lists_every_setting_of_the_readme() {
    let (code, help, _) = hookflow(&["serve", "--help"], &[]);
    assert_eq!(code, 0);
    let listed = setting_names(&help);
    let documented = setting_names(&readme_section("\n## Settings"));
    // The CLI's own setting (`hookflow command --url`) is in `command --help`.
    let missing: Vec<_> = documented
        .iter()
        .filter(|name| *name != "HOOKFLOW_URL" && !listed.contains(*name))
        .collect();
    assert!(missing.is_empty(), "not in `serve --help`: {missing:?}");
}

#[test]
fn command_help_lists_every_command_of_the_readme() {
    let (code, help, _) = hookflow(&["command", "--help"], &[]);
    assert_eq!(code, 0);
    let reference = readme_section("\n## API reference");
    let commands: Vec<&str> = reference
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        // Routes (`/api/v3/…`) are not commands the CLI runs.
        .filter(|name| name.contains('.') && !name.starts_with('/') && *name != "webhook.receive")
        .collect();
    assert!(commands.len() >= 11, "{commands:?}");
    let missing: Vec<_> = commands
        .iter()
        .filter(|name| !help.contains(&format!("  {name} ")))
        .collect();
    assert!(missing.is_empty(), "not in `command --help`: {missing:?}");
    assert!(help.contains("HOOKFLOW_URL"), "{help}");
}
