//! Each Lambda function links only what its routes use (the core's cargo
//! features, see the README's "Cargo features"): the dependency tree cargo
//! resolves for each one, checked against what it must and must not contain.

use std::collections::BTreeSet;
use std::process::Command;

/// The crates in `package`'s normal (non-dev, non-build) dependency tree.
fn linked_crates(package: &str) -> BTreeSet<String> {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}", "-p", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn each_function_links_only_the_adapters_it_uses() {
    // (function, must link, must not link)
    let expected: [(&str, &[&str], &[&str]); 4] = [
        (
            "result-poll",
            &["aws-sdk-dynamodb", "aws-sdk-s3"],
            &[
                "aws-sdk-sqs",
                "aws-sdk-secretsmanager",
                "reqwest",
                "lettre",
                "jsonschema",
                "rusqlite",
                "lambda_http",
            ],
        ),
        (
            "webhook-receive",
            &["aws-sdk-dynamodb", "aws-sdk-s3", "aws-sdk-sqs"],
            &[
                "aws-sdk-secretsmanager",
                "reqwest",
                "lettre",
                "jsonschema",
                "rusqlite",
                "lambda_http",
            ],
        ),
        (
            // lettre: `pipeline.test sideEffects=true` sends its mail from here.
            "webhook-admin",
            &[
                "aws-sdk-dynamodb",
                "aws-sdk-secretsmanager",
                "reqwest",
                "lettre",
            ],
            &["rusqlite", "lambda_http"],
        ),
        (
            "pipeline-worker",
            &["aws-sdk-sqs", "lettre", "reqwest"],
            &["rusqlite", "lambda_http"],
        ),
    ];
    for (function, must, must_not) in expected {
        let linked = linked_crates(function);
        for name in must {
            assert!(linked.contains(*name), "{function} should link {name}");
        }
        let unwanted: Vec<_> = must_not
            .iter()
            .filter(|name| linked.contains(**name))
            .collect();
        assert!(unwanted.is_empty(), "{function} links {unwanted:?}");
    }
}
