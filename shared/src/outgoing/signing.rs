//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! A signed call carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one
//! space-separated entry per active secret, so a receiver still holding the
//! previous secret verifies calls during a rotation.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest and most key bytes a secret may hold (the standard's bounds).
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Checks a `whsec_<base64>` secret and returns its key bytes.
pub fn parse_secret(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
        format!("secret must start with {SECRET_PREFIX} followed by base64 key bytes")
    })?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| format!("the part after {SECRET_PREFIX} is not base64"))?;
    if !KEY_BYTES.contains(&key.len()) {
        return Err(format!(
            "the secret's key must be {} to {} bytes, not {}",
            KEY_BYTES.start(),
            KEY_BYTES.end(),
            key.len()
        ));
    }
    Ok(key)
}

/// A fresh random secret (32 key bytes), for `outgoing.put` with `"secret": "generate"`.
pub fn generate_secret() -> String {
    // From the operating system's generator: a UUID v4 carries only 122
    // random bits and is not meant as key material.
    let key = crate::random::secret_bytes::<32>();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` value for `body` sent as message `id` at `timestamp`,
/// one `v1,<signature>` per secret. Secrets are validated on `outgoing.put`; one
/// that no longer parses is skipped.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .filter_map(|secret| parse_secret(secret).ok())
        .map(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn matches_the_standard_test_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature_header([secret], id, 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn one_entry_per_secret_and_bad_secrets_refused() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        let header = signature_header([a.as_str(), b.as_str()], "id", 1, b"x");
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.split(' ').all(|s| s.starts_with("v1,")));
        assert!(parse_secret(&a).is_ok());
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!",
            "whsec_c2hvcnQ=",
        ] {
            assert!(parse_secret(bad).is_err(), "{bad}");
        }
    }
}
