//! `hookflow command <name> key=value …`: PIPEFORCE's `pi command`, against any hookflow.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::serve::ADMIN_TOKEN_FILE;

#[derive(clap::Args)]
pub struct CommandArgs {
    /// The command, e.g. `webhook.put`.
    name: String,
    /// Parameters as `key=value`.
    params: Vec<String>,
    /// Base URL of the hookflow server.
    #[arg(long, env = "HOOKFLOW_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// The admin token; when unset, the one `serve` keeps in `--data-dir` is used.
    #[arg(long, env = "HOOKFLOW_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Send this file as the request body (a pipeline's YAML for `pipeline.put`, a
    /// `.json` file for `outgoing.put` or `webhook.send`); the parameters then go in
    /// the query string.
    #[arg(long, short = 'f')]
    body_file: Option<PathBuf>,
    /// Where a local `serve` keeps its generated admin token.
    #[arg(long, env = "HOOKFLOW_DATA_DIR", default_value = ".hookflow")]
    data_dir: PathBuf,
}

pub async fn run(args: CommandArgs) -> anyhow::Result<ExitCode> {
    let mut form = Vec::with_capacity(args.params.len());
    for param in &args.params {
        let Some((key, value)) = param.split_once('=') else {
            bail!("parameter {param:?} is not of the form key=value");
        };
        form.push((key.to_owned(), value.to_owned()));
    }
    let token = match args.token {
        Some(token) => token,
        None => std::fs::read_to_string(args.data_dir.join(ADMIN_TOKEN_FILE))
            .map(|t| t.trim().to_owned())
            .with_context(|| {
                format!(
                    "no admin token: set HOOKFLOW_ADMIN_TOKEN or pass --token (none found in {})",
                    args.data_dir.display()
                )
            })?,
    };
    let url = format!(
        "{}/api/v3/command/{}",
        args.url.trim_end_matches('/'),
        args.name
    );
    let request = reqwest::Client::new().post(&url).bearer_auth(token);
    let request = match &args.body_file {
        Some(path) => {
            let body =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            // JSON for registrations and triggers (`outgoing.put`, `webhook.send`),
            // YAML for pipelines.
            let content_type = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => "application/json",
                _ => "application/yaml",
            };
            request
                .query(&form)
                .header("content-type", content_type)
                .body(body)
        }
        None => request.form(&form),
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let text = response.text().await.context("cannot read the answer")?;
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    if status.is_success() {
        match &json {
            Some(value) => println!("{}", serde_json::to_string_pretty(value)?),
            None => println!("{text}"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (code, message) = json
        .as_ref()
        .and_then(|v| v.get("error"))
        .map(|e| {
            let field = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            (field("code"), field("message"))
        })
        .unwrap_or_else(|| (String::new(), text.clone()));
    eprintln!("error: {message} ({code}, HTTP {})", status.as_u16());
    Ok(ExitCode::FAILURE)
}
