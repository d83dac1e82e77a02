//! What the AWS backend of `serve` needs from its environment, checked before
//! any AWS call. Without a region or credentials the SDK goes looking for them
//! at the cloud metadata address (169.254.169.254), waits out its timeouts and
//! fails in words that name none of the settings.

use aws_types::os_shim_internal::{Env, Fs};

use super::AwsResources;

/// Profile keys the SDK (as hookflow builds it) gets credentials from.
const PROFILE_CREDENTIAL_KEYS: [&str; 3] =
    ["aws_access_key_id", "role_arn", "web_identity_token_file"];

/// The settings missing for the AWS backend, each as the operator would set
/// it; empty when it can start. Reads the environment and the shared AWS
/// config files (`~/.aws/config`, `~/.aws/credentials`, or `AWS_CONFIG_FILE`
/// and `AWS_SHARED_CREDENTIALS_FILE`), nothing else. With `provision` the
/// resource names are not needed.
pub async fn missing_aws_settings(provision: bool) -> Vec<String> {
    missing_in(&Env::real(), &Fs::real(), provision).await
}

async fn missing_in(env: &Env, fs: &Fs, provision: bool) -> Vec<String> {
    let var = |name: &str| env.get(name).ok().filter(|v| !v.trim().is_empty());
    let mut missing = Vec::new();
    let profiles = match aws_config::profile::load(fs, env, &Default::default(), None).await {
        Ok(profiles) => Some(profiles),
        Err(err) => {
            missing.push(format!("readable AWS config files ({err})"));
            None
        }
    };
    let profile = profiles
        .as_ref()
        .and_then(|set| set.get_profile(set.selected_profile()));

    let region = var("AWS_REGION").is_some()
        || var("AWS_DEFAULT_REGION").is_some()
        || profile.is_some_and(|p| p.get("region").is_some());
    if !region {
        missing.push("AWS_REGION (or a region in the AWS profile)".into());
    }
    let credentials = (var("AWS_ACCESS_KEY_ID").is_some()
        && var("AWS_SECRET_ACCESS_KEY").is_some())
        || (var("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && var("AWS_ROLE_ARN").is_some())
        || var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
        || var("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
        || profile.is_some_and(|p| PROFILE_CREDENTIAL_KEYS.iter().any(|k| p.get(k).is_some()));
    if !credentials {
        missing.push(
            "credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile with credentials \
             (AWS_PROFILE, or [default] in ~/.aws/credentials), AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, \
             or AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN"
                .into(),
        );
    }
    if !provision {
        let names = AwsResources::missing(|name| var(name));
        if !names.is_empty() {
            missing.push(format!("{} (or --provision)", names.join(", ")));
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn missing(vars: &[(&str, &str)], files: &[(&str, &str)], provision: bool) -> String {
        let env = Env::from_slice(&[&[("HOME", "/home/op")], vars].concat());
        let fs = Fs::from_slice(files);
        missing_in(&env, &fs, provision).await.join("; ")
    }

    const NAMES: [(&str, &str); 7] = [
        ("HOOKFLOW_WEBHOOKS_TABLE", "w"),
        ("HOOKFLOW_PIPELINES_TABLE", "p"),
        ("HOOKFLOW_EVENTS_TABLE", "e"),
        ("HOOKFLOW_OUTGOING_TABLE", "o"),
        ("HOOKFLOW_INVOCATIONS_TABLE", "i"),
        ("HOOKFLOW_QUEUE_URL", "q"),
        ("HOOKFLOW_PAYLOAD_BUCKET", "b"),
    ];

    #[tokio::test]
    async fn nothing_set_names_everything() {
        let text = missing(&[], &[], false).await;
        assert!(text.contains("AWS_REGION"), "{text}");
        assert!(text.contains("credentials"), "{text}");
        for (name, _) in NAMES {
            assert!(text.contains(name), "{name} in {text}");
        }
        let text = missing(&[], &[], true).await;
        assert!(
            !text.contains("HOOKFLOW_"),
            "--provision needs no names: {text}"
        );
    }

    #[tokio::test]
    async fn every_supported_credentials_source_is_enough() {
        let region = ("AWS_REGION", "eu-central-1");
        for vars in [
            &[
                region,
                ("AWS_ACCESS_KEY_ID", "AKIA"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ][..],
            &[
                region,
                ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials"),
            ],
            &[
                region,
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/c"),
            ],
            &[
                region,
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ],
        ] {
            assert_eq!(missing(vars, &[], true).await, "", "{vars:?}");
        }
        // Half a pair is not enough.
        let text = missing(&[region, ("AWS_ACCESS_KEY_ID", "AKIA")], &[], true).await;
        assert!(text.starts_with("credentials"), "{text}");
    }

    #[tokio::test]
    async fn the_shared_config_files_count() {
        let config = "[profile dev]\nregion = eu-west-1\n";
        let credentials = "[dev]\naws_access_key_id = AKIA\naws_secret_access_key = s\n";
        let files = [
            ("/home/op/.aws/config", config),
            ("/home/op/.aws/credentials", credentials),
        ];
        assert_eq!(missing(&[("AWS_PROFILE", "dev")], &files, true).await, "");
        // Without AWS_PROFILE the default profile is read, which has neither.
        let text = missing(&[], &files, true).await;
        assert!(
            text.contains("AWS_REGION") && text.contains("credentials"),
            "{text}"
        );
        let default = [(
            "/home/op/.aws/credentials",
            "[default]\naws_access_key_id = AKIA\naws_secret_access_key = s\nregion = eu-west-1\n",
        )];
        assert_eq!(missing(&[], &default, true).await, "");
    }

    #[tokio::test]
    async fn names_are_needed_without_provision() {
        let mut vars = vec![
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ];
        vars.extend_from_slice(&NAMES[..5]);
        let text = missing(&vars, &[], false).await;
        assert_eq!(
            text,
            "HOOKFLOW_QUEUE_URL, HOOKFLOW_PAYLOAD_BUCKET (or --provision)"
        );
        vars.extend_from_slice(&NAMES[5..]);
        assert_eq!(missing(&vars, &[], false).await, "");
    }
}
