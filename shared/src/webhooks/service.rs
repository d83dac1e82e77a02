//! The `webhook.*` commands carried out over the webhook store: the rules of
//! [`registration`](super::registration) decide, the store keeps.

use super::error::WebhookError;
use super::registration::WebhookPut;
use crate::domain::{Timestamp, Token, Webhook};
use crate::ports::WebhookStore;

/// `webhook.put`: changes the webhook `change.uuid` names if it exists, else
/// creates one (with that uuid, if given).
pub async fn put(
    store: &dyn WebhookStore,
    change: WebhookPut,
    now: Timestamp,
) -> Result<Webhook, WebhookError> {
    let existing = match &change.uuid {
        Some(token) => store.get_by_token(token).await?,
        None => None,
    };
    if let Some(mut webhook) = existing {
        change.apply_to(&mut webhook, now);
        store
            .update_webhook(&webhook)
            .await
            .map_err(WebhookError::refused_write)?;
        return Ok(webhook);
    }
    let webhook = change.create(now)?;
    store
        .insert_webhook(&webhook)
        .await
        .map_err(WebhookError::refused_write)?;
    tracing::info!(event_key = %webhook.event_key, "webhook created");
    Ok(webhook)
}

/// The webhook with this token.
pub async fn get(store: &dyn WebhookStore, token: &Token) -> Result<Webhook, WebhookError> {
    store
        .get_by_token(token)
        .await?
        .ok_or(WebhookError::NotFound)
}

/// Removes the webhook with this token and returns it.
pub async fn delete(store: &dyn WebhookStore, token: &Token) -> Result<Webhook, WebhookError> {
    let webhook = get(store, token).await?;
    if !store.delete_webhook(token).await? {
        return Err(WebhookError::NotFound);
    }
    tracing::info!(event_key = %webhook.event_key, "webhook deleted");
    Ok(webhook)
}
