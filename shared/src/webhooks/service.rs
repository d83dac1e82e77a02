//! The `webhook.*` commands carried out over the webhook store: the rules of
//! [`registration`](super::registration) decide, the store keeps.

use super::error::WebhookError;
use super::registration::WebhookPut;
use super::rotation::WebhookRotate;
use crate::domain::rotation::Rotation;
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
    // By its current token: `token` may be the previous one, during a grace.
    if !store.delete_webhook(&webhook.token).await? {
        return Err(WebhookError::NotFound);
    }
    tracing::info!(event_key = %webhook.event_key, "webhook deleted");
    Ok(webhook)
}

/// `webhook.rotate`: gives the webhook `change.uuid` names a fresh token; the
/// one it had keeps working for the grace asked for.
pub async fn rotate(
    store: &dyn WebhookStore,
    change: WebhookRotate,
    now: Timestamp,
) -> Result<Webhook, WebhookError> {
    let grace_seconds = change.grace_seconds();
    let token = change.uuid.ok_or(WebhookError::UuidMissing)?;
    let webhook = get(store, &token).await?;
    let rotation = Rotation {
        new_token: Token::generate(),
        at: now,
        previous_expires_at: now.plus_seconds(u64::from(grace_seconds)),
    };
    let rotated = store
        .rotate_token(&webhook.token, &rotation)
        .await
        .map_err(WebhookError::refused_write)?;
    tracing::info!(event_key = %rotated.event_key, grace_seconds, "webhook token rotated");
    Ok(rotated)
}
