//! Verifying the sender's signature on a received call, per webhook.
//!
//! Each scheme is the one its provider documents, computed over the exact bytes
//! received (before any parsing). MACs are compared in constant time; a
//! timestamped scheme refuses a timestamp outside the tolerance in either
//! direction (a replayed or a forged-future call). Several secrets may be
//! active at once (a rotation): any one that verifies is enough.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::Refusal;
use crate::domain::outgoing::SecretText;
pub use crate::domain::verify::{Algorithm, Encoding, Scheme, Verification};
use crate::outgoing::signing;

/// How far a signed timestamp may be from now, by default (seconds).
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
/// Most secrets a webhook may verify with at once.
pub const MAX_SECRETS: usize = 5;
/// Longest secret accepted.
const MAX_SECRET_LEN: usize = 512;

/// A `webhook.put` `verify` value that does not fit: the reason, for `invalid_verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidVerify(pub String);

fn invalid(reason: impl Into<String>) -> InvalidVerify {
    InvalidVerify(reason.into())
}

impl Verification {
    /// Reads the `verify` object of `webhook.put`:
    /// `{"scheme", "secret" | "secrets": […], "toleranceSeconds", "header", "algorithm", "encoding", "prefix"}`.
    pub fn from_json(value: &Value) -> Result<Self, InvalidVerify> {
        let object = value
            .as_object()
            .ok_or_else(|| invalid("verify must be an object with a scheme and a secret"))?;
        let known = [
            "scheme",
            "secret",
            "secrets",
            "toleranceSeconds",
            "header",
            "algorithm",
            "encoding",
            "prefix",
        ];
        if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(invalid(format!(
                "verify has no field '{unknown}' (it takes: {})",
                known.join(", ")
            )));
        }
        let text = |name: &str| -> Result<Option<&str>, InvalidVerify> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(invalid(format!("verify.{name} must be text"))),
            }
        };
        let scheme_name = text("scheme")?.ok_or_else(|| {
            invalid("verify.scheme is required: standard-webhooks, github, stripe, shopify, slack or hmac")
        })?;
        let scheme = match scheme_name {
            "standard-webhooks" => Scheme::StandardWebhooks,
            "github" => Scheme::Github,
            "stripe" => Scheme::Stripe,
            "shopify" => Scheme::Shopify,
            "slack" => Scheme::Slack,
            "hmac" => {
                let header = text("header")?
                    .ok_or_else(|| invalid("verify.header is required for the hmac scheme"))?;
                if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return Err(invalid("verify.header is not a valid header name"));
                }
                let algorithm = match text("algorithm")?.unwrap_or("sha256") {
                    "sha1" => Algorithm::Sha1,
                    "sha256" => Algorithm::Sha256,
                    "sha512" => Algorithm::Sha512,
                    _ => return Err(invalid("verify.algorithm must be sha1, sha256 or sha512")),
                };
                let encoding = match text("encoding")?.unwrap_or("hex") {
                    "hex" => Encoding::Hex,
                    "base64" => Encoding::Base64,
                    _ => return Err(invalid("verify.encoding must be hex or base64")),
                };
                let prefix = text("prefix")?.unwrap_or_default();
                if prefix.len() > 64 {
                    return Err(invalid("verify.prefix may be at most 64 characters"));
                }
                Scheme::Hmac {
                    header: header.to_ascii_lowercase(),
                    algorithm,
                    encoding,
                    prefix: prefix.to_owned(),
                }
            }
            other => {
                return Err(invalid(format!(
                    "unknown verify.scheme '{other}': standard-webhooks, github, stripe, shopify, slack or hmac"
                )));
            }
        };
        if !matches!(scheme, Scheme::Hmac { .. })
            && ["header", "algorithm", "encoding", "prefix"]
                .iter()
                .any(|k| object.contains_key(*k))
        {
            return Err(invalid(
                "header, algorithm, encoding and prefix belong to the hmac scheme only",
            ));
        }
        let secrets: Vec<String> = match (object.get("secret"), object.get("secrets")) {
            (Some(_), Some(_)) => {
                return Err(invalid("give verify.secret or verify.secrets, not both"));
            }
            (Some(Value::String(s)), None) => vec![s.clone()],
            (None, Some(Value::Array(items))) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid("verify.secrets must be a list of texts"))?,
            (None, None) => return Err(invalid("verify.secret is required")),
            _ => {
                return Err(invalid(
                    "verify.secret must be text, verify.secrets a list of texts",
                ));
            }
        };
        if secrets.is_empty() || secrets.len() > MAX_SECRETS {
            return Err(invalid(format!("verify takes 1 to {MAX_SECRETS} secrets")));
        }
        for secret in &secrets {
            if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
                return Err(invalid(format!(
                    "a verify secret must be 1 to {MAX_SECRET_LEN} characters"
                )));
            }
            if scheme == Scheme::StandardWebhooks {
                signing::parse_secret(secret)
                    .map_err(|e| invalid(format!("verify.secret: {e}")))?;
            }
        }
        let tolerance_seconds = match object.get("toleranceSeconds") {
            None | Some(Value::Null) => DEFAULT_TOLERANCE_SECONDS,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=86_400).contains(n))
                .ok_or_else(|| {
                    invalid("verify.toleranceSeconds must be a whole number from 1 to 86400")
                })?,
        };
        Ok(Verification {
            scheme,
            secrets: secrets.into_iter().map(SecretText::new).collect(),
            tolerance_seconds,
        })
    }

    /// Checks the call: `Ok` when one of the secrets produces a signature it carries.
    /// `now` is the current Unix time in seconds.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal> {
        match &self.scheme {
            Scheme::StandardWebhooks => self.standard_webhooks(headers, body, now),
            Scheme::Github => {
                let sent = header(headers, "x-hub-signature-256")
                    .and_then(|v| v.strip_prefix("sha256="))
                    .and_then(hex_decode)
                    .ok_or(Refusal::SignatureMissing)?;
                self.any_secret(|key| mac(Algorithm::Sha256, key, &[body]), &[sent])
            }
            Scheme::Stripe => {
                let value = header(headers, "stripe-signature").ok_or(Refusal::SignatureMissing)?;
                let mut timestamp = None;
                let mut sent = Vec::new();
                for item in value.split(',') {
                    match item.trim().split_once('=') {
                        Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
                        Some(("v1", sig)) => sent.extend(hex_decode(sig)),
                        _ => {}
                    }
                }
                let timestamp = timestamp.ok_or(Refusal::SignatureMissing)?;
                if sent.is_empty() {
                    return Err(Refusal::SignatureMissing);
                }
                self.within_tolerance(timestamp, now)?;
                let t = timestamp.to_string();
                self.any_secret(
                    |key| mac(Algorithm::Sha256, key, &[t.as_bytes(), b".", body]),
                    &sent,
                )
            }
            Scheme::Shopify => {
                let sent = header(headers, "x-shopify-hmac-sha256")
                    .and_then(|v| BASE64.decode(v).ok())
                    .ok_or(Refusal::SignatureMissing)?;
                self.any_secret(|key| mac(Algorithm::Sha256, key, &[body]), &[sent])
            }
            Scheme::Slack => {
                let sent = header(headers, "x-slack-signature")
                    .and_then(|v| v.strip_prefix("v0="))
                    .and_then(hex_decode)
                    .ok_or(Refusal::SignatureMissing)?;
                let t = header(headers, "x-slack-request-timestamp")
                    .ok_or(Refusal::SignatureMissing)?;
                let timestamp = t.parse::<i64>().map_err(|_| Refusal::SignatureMissing)?;
                self.within_tolerance(timestamp, now)?;
                self.any_secret(
                    |key| mac(Algorithm::Sha256, key, &[b"v0:", t.as_bytes(), b":", body]),
                    &[sent],
                )
            }
            Scheme::Hmac {
                header: name,
                algorithm,
                encoding,
                prefix,
            } => {
                let value = header(headers, name).ok_or(Refusal::SignatureMissing)?;
                let encoded = value
                    .strip_prefix(prefix.as_str())
                    .ok_or(Refusal::SignatureMissing)?;
                let sent = match encoding {
                    Encoding::Hex => hex_decode(encoded),
                    Encoding::Base64 => BASE64.decode(encoded.trim()).ok(),
                }
                .ok_or(Refusal::SignatureMissing)?;
                self.any_secret(|key| mac(*algorithm, key, &[body]), &[sent])
            }
        }
    }

    fn standard_webhooks(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal> {
        // Svix, the standard's origin, sends the same headers under `svix-*`.
        let get = |name: &str| {
            header(headers, &format!("webhook-{name}"))
                .or_else(|| header(headers, &format!("svix-{name}")))
        };
        let (Some(id), Some(t), Some(signatures)) = (get("id"), get("timestamp"), get("signature"))
        else {
            return Err(Refusal::SignatureMissing);
        };
        let timestamp = t.parse::<i64>().map_err(|_| Refusal::SignatureMissing)?;
        let sent: Vec<Vec<u8>> = signatures
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| BASE64.decode(s).ok())
            .collect();
        if sent.is_empty() {
            return Err(Refusal::SignatureMissing);
        }
        self.within_tolerance(timestamp, now)?;
        let mut keys = Vec::with_capacity(self.secrets.len());
        for secret in &self.secrets {
            // Checked at webhook.put; a secret that no longer parses verifies nothing.
            if let Ok(key) = signing::parse_secret(secret.expose()) {
                keys.push(key);
            }
        }
        let verified = keys.iter().any(|key| {
            let expected = mac(
                Algorithm::Sha256,
                key,
                &[id.as_bytes(), b".", t.as_bytes(), b".", body],
            );
            sent.iter().any(|s| constant_time_eq(&expected, s))
        });
        if verified {
            Ok(())
        } else {
            Err(Refusal::SignatureInvalid)
        }
    }

    fn within_tolerance(&self, timestamp: i64, now: i64) -> Result<(), Refusal> {
        if timestamp.abs_diff(now) > self.tolerance_seconds {
            Err(Refusal::TimestampOutOfTolerance)
        } else {
            Ok(())
        }
    }

    /// `Ok` when the MAC computed with one of the secrets (as text bytes) equals one sent.
    fn any_secret(
        &self,
        compute: impl Fn(&[u8]) -> Vec<u8>,
        sent: &[Vec<u8>],
    ) -> Result<(), Refusal> {
        let verified = self.secrets.iter().any(|secret| {
            let expected = compute(secret.expose().as_bytes());
            sent.iter().any(|s| constant_time_eq(&expected, s))
        });
        if verified {
            Ok(())
        } else {
            Err(Refusal::SignatureInvalid)
        }
    }
}

/// A header's value as text, trimmed; `None` when absent or not text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// HMAC of the concatenated `parts` under `key`.
fn mac(algorithm: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac =
            <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts),
    }
}

/// Equal in constant time for equal lengths (the length of a MAC is no secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: Value) -> Verification {
        Verification::from_json(&value).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// GitHub's documented example ("Validating webhook deliveries").
    #[test]
    fn github_documented_example() {
        let github = config(json!({"scheme": "github", "secret": "It's a Secret to Everybody"}));
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let h = headers(&[("x-hub-signature-256", sig)]);
        assert_eq!(github.verify(&h, b"Hello, World!", 0), Ok(()));
        assert_eq!(
            github.verify(&h, b"Hello, World?", 0),
            Err(Refusal::SignatureInvalid)
        );
        assert_eq!(
            github.verify(&HeaderMap::new(), b"Hello, World!", 0),
            Err(Refusal::SignatureMissing)
        );
    }

    /// Slack's documented example ("Verifying requests from Slack").
    #[test]
    fn slack_documented_example() {
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let slack =
            config(json!({"scheme": "slack", "secret": "8f742231b10e8888abcd99yyyzzz85a5"}));
        let h = headers(&[
            ("x-slack-request-timestamp", "1531420618"),
            (
                "x-slack-signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
        ]);
        assert_eq!(slack.verify(&h, body.as_bytes(), 1531420618 + 10), Ok(()));
        assert_eq!(
            slack.verify(&h, body.as_bytes(), 1531420618 + 301),
            Err(Refusal::TimestampOutOfTolerance)
        );
        assert_eq!(
            slack.verify(&h, body.as_bytes(), 1531420618 - 301),
            Err(Refusal::TimestampOutOfTolerance)
        );
    }

    /// The Standard Webhooks test vector, verified with rotation and svix names.
    #[test]
    fn standard_webhooks_vector_rotation_and_svix_names() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let other = signing::generate_secret();
        let body = br#"{"test": 2432232314}"#;
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let ts = 1614265330;
        for prefix in ["webhook", "svix"] {
            let h = headers(&[
                (&format!("{prefix}-id"), "msg_p5jXN8AQM9LWM0D4loKWxJek"),
                (&format!("{prefix}-timestamp"), "1614265330"),
                (
                    &format!("{prefix}-signature"),
                    &format!("v1,bm90IGl0 {sig}"),
                ),
            ]);
            let one = config(json!({"scheme": "standard-webhooks", "secret": secret}));
            assert_eq!(one.verify(&h, body, ts), Ok(()));
            let rotated =
                config(json!({"scheme": "standard-webhooks", "secrets": [other, secret]}));
            assert_eq!(rotated.verify(&h, body, ts + 299), Ok(()));
            // Exactly the tolerance away, either way, is still accepted.
            assert_eq!(one.verify(&h, body, ts + 300), Ok(()));
            assert_eq!(one.verify(&h, body, ts - 300), Ok(()));
            let only_other = config(json!({"scheme": "standard-webhooks", "secret": other}));
            assert_eq!(
                only_other.verify(&h, body, ts),
                Err(Refusal::SignatureInvalid)
            );
            assert_eq!(one.verify(&h, b"{}", ts), Err(Refusal::SignatureInvalid));
            assert_eq!(
                one.verify(&h, body, ts + 301),
                Err(Refusal::TimestampOutOfTolerance)
            );
        }
    }

    #[test]
    fn stripe_and_shopify_against_a_separate_computation() {
        // Computed here independently of `mac`, with the hmac crate directly.
        let secret = "whsec_test_secret";
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        m.update(b"1700000000.");
        m.update(body);
        let v1 = hex(&m.finalize().into_bytes());
        let stripe = config(json!({"scheme": "stripe", "secret": secret}));
        let h = headers(&[(
            "stripe-signature",
            &format!("t=1700000000,v1=00ff,v1={v1},v0=abc"),
        )]);
        assert_eq!(stripe.verify(&h, body, 1700000100), Ok(()));
        assert_eq!(
            stripe.verify(&h, b"{}", 1700000100),
            Err(Refusal::SignatureInvalid)
        );
        assert_eq!(
            stripe.verify(&h, body, 1700001000),
            Err(Refusal::TimestampOutOfTolerance)
        );

        let mut m = Hmac::<sha2::Sha256>::new_from_slice(b"shpss_secret").unwrap();
        m.update(body);
        let sent = BASE64.encode(m.finalize().into_bytes());
        let shopify = config(json!({"scheme": "shopify", "secret": "shpss_secret"}));
        let h = headers(&[("x-shopify-hmac-sha256", &sent)]);
        assert_eq!(shopify.verify(&h, body, 0), Ok(()));
        assert_eq!(shopify.verify(&h, b"x", 0), Err(Refusal::SignatureInvalid));
    }

    #[test]
    fn generic_hmac_in_every_algorithm_and_encoding() {
        let body = b"payload";
        for (algorithm, encoding, prefix) in [
            ("sha1", "hex", "sha1="),
            ("sha256", "base64", ""),
            ("sha512", "hex", "v1:"),
        ] {
            let cfg = config(json!({
                "scheme": "hmac", "secret": "k", "header": "X-Signature",
                "algorithm": algorithm, "encoding": encoding, "prefix": prefix
            }));
            let raw = match algorithm {
                "sha1" => {
                    let mut m = Hmac::<sha1::Sha1>::new_from_slice(b"k").unwrap();
                    m.update(body);
                    m.finalize().into_bytes().to_vec()
                }
                "sha256" => {
                    let mut m = Hmac::<sha2::Sha256>::new_from_slice(b"k").unwrap();
                    m.update(body);
                    m.finalize().into_bytes().to_vec()
                }
                _ => {
                    let mut m = Hmac::<sha2::Sha512>::new_from_slice(b"k").unwrap();
                    m.update(body);
                    m.finalize().into_bytes().to_vec()
                }
            };
            let encoded = if encoding == "hex" {
                hex(&raw)
            } else {
                BASE64.encode(&raw)
            };
            let h = headers(&[("x-signature", &format!("{prefix}{encoded}"))]);
            assert_eq!(cfg.verify(&h, body, 0), Ok(()), "{algorithm}");
            assert_eq!(
                cfg.verify(&h, b"other", 0),
                Err(Refusal::SignatureInvalid),
                "{algorithm}"
            );
            let wrong_prefix = headers(&[("x-signature", &format!("zz{encoded}"))]);
            if !prefix.is_empty() {
                assert_eq!(
                    cfg.verify(&wrong_prefix, body, 0),
                    Err(Refusal::SignatureMissing)
                );
            }
        }
    }

    #[test]
    fn bad_settings_are_refused_and_secrets_masked() {
        for bad in [
            json!("github"),
            json!({"scheme": "github"}),
            json!({"scheme": "gitlab", "secret": "x"}),
            json!({"scheme": "github", "secret": ""}),
            json!({"scheme": "github", "secret": "a", "secrets": ["b"]}),
            json!({"scheme": "github", "secrets": []}),
            json!({"scheme": "github", "secrets": ["1","2","3","4","5","6"]}),
            json!({"scheme": "github", "secret": "x", "header": "X-A"}),
            json!({"scheme": "standard-webhooks", "secret": "not-whsec"}),
            json!({"scheme": "hmac", "secret": "x"}),
            json!({"scheme": "hmac", "secret": "x", "header": "bad header"}),
            json!({"scheme": "hmac", "secret": "x", "header": "X-A", "algorithm": "md5"}),
            json!({"scheme": "github", "secret": "x", "toleranceSeconds": 0}),
            json!({"scheme": "github", "secret": "x", "extra": 1}),
        ] {
            assert!(Verification::from_json(&bad).is_err(), "{bad}");
        }
        let cfg =
            config(json!({"scheme": "github", "secrets": ["one", "two"], "toleranceSeconds": 60}));
        let shown = cfg.to_api_json();
        assert_eq!(
            shown,
            json!({"scheme": "github", "secrets": ["********", "********"], "toleranceSeconds": 60})
        );
        assert!(!format!("{cfg:?}").contains("one"));
        // Stored and read back unchanged.
        let stored: Verification =
            serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(stored, cfg);
    }
}
