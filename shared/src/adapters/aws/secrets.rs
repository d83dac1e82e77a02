//! [`SecretSource`] on AWS Secrets Manager: read when first needed, never at
//! start-up, and kept for [`SECRET_CACHE`] so a busy function asks once in a while.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::unavailable;
use crate::error::StoreError;
use crate::ports::{SecretSource, StoreResult};

/// How long a secret read from Secrets Manager is used before it is read again
/// (a rotated secret takes effect within this time).
pub const SECRET_CACHE: Duration = Duration::from_secs(300);

/// One secret, by ARN or name.
pub struct SecretsManagerSecret {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    /// The value and when it was read. The lock is held while reading, so
    /// concurrent first requests make one call.
    cached: Mutex<Option<(Instant, String)>>,
}

impl SecretsManagerSecret {
    /// The secret `secret_id`; nothing is read yet.
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: &str) -> Self {
        SecretsManagerSecret {
            client,
            secret_id: secret_id.to_owned(),
            cached: Mutex::new(None),
        }
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSecret {
    async fn reveal(&self) -> StoreResult<String> {
        let mut cached = self.cached.lock().await;
        if let Some((read_at, value)) = cached.as_ref()
            && read_at.elapsed() < SECRET_CACHE
        {
            return Ok(value.clone());
        }
        let read = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(unavailable)?;
        let value = read
            .secret_string()
            .ok_or_else(|| StoreError::unavailable("the secret holds no text"))?
            .to_owned();
        *cached = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}
