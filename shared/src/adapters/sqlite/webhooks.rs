//! [`WebhookStore`](crate::ports::WebhookStore) on SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, from_json, is_unique_violation, to_json};
use crate::domain::rotation::Rotation;
use crate::domain::verify::Refusals;
use crate::domain::{Timestamp, Token, Webhook};
use crate::error::{Conflict, StoreError};
use crate::ports::{StoreResult, WebhookStore};

fn webhook_conflict(conn: &Connection, webhook: &Webhook) -> StoreError {
    let key_owner: Option<String> = conn
        .query_row(
            "SELECT token FROM webhooks WHERE event_key = ?1",
            [webhook.event_key.as_str()],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten();
    match key_owner {
        Some(owner) if owner != webhook.token.reveal() => {
            StoreError::Conflict(Conflict::EventKeyTaken)
        }
        _ => StoreError::Conflict(Conflict::TokenTaken),
    }
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let webhook = webhook.clone();
        let data = to_json(&webhook)?;
        self.write(move |c| {
            let inserted = c
                .prepare_cached(
                    "INSERT INTO webhooks (token, event_key, created_at, data) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    webhook.token.reveal(),
                    webhook.event_key.as_str(),
                    webhook.created_at.0,
                    data
                ]);
            match inserted {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(webhook_conflict(c, &webhook)),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let webhook = webhook.clone();
        let data = to_json(&webhook)?;
        self.write(move |c| {
            let updated = c
                .prepare_cached("UPDATE webhooks SET event_key = ?2, data = ?3 WHERE token = ?1")?
                .execute(params![
                    webhook.token.reveal(),
                    webhook.event_key.as_str(),
                    data
                ]);
            match updated {
                Ok(0) => Err(StoreError::NotFound),
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => {
                    Err(StoreError::Conflict(Conflict::EventKeyTaken))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn get_by_token(&self, token: &Token) -> StoreResult<Option<Webhook>> {
        let token = token.reveal().to_owned();
        let now = Timestamp::now();
        self.read(move |c| {
            // A webhook's own token wins over an expired-but-unpurged alias of
            // another webhook that once had it.
            c.prepare_cached(
                "SELECT data, 0 AS via_alias FROM webhooks WHERE token = ?1
                 UNION ALL
                 SELECT w.data, 1 FROM webhook_previous_tokens p
                   JOIN webhooks w ON w.token = p.current_token
                  WHERE p.token = ?1 AND p.expires_at > ?2
                 ORDER BY via_alias LIMIT 1",
            )?
            .query_row(params![token, now.0], |r| {
                from_json(&r.get::<_, String>(0)?)
            })
            .optional()
        })
        .await
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.read(move |c| {
            c.prepare_cached("SELECT data FROM webhooks ORDER BY created_at, event_key")?
                .query_map([], |r| from_json(&r.get::<_, String>(0)?))?
                .collect()
        })
        .await
    }

    async fn delete_webhook(&self, token: &Token) -> StoreResult<bool> {
        let token = token.reveal();
        self.write(move |c| {
            c.execute("DELETE FROM webhook_refusals WHERE token = ?1", [&token])?;
            c.execute(
                "DELETE FROM webhook_previous_tokens WHERE current_token = ?1",
                [&token],
            )?;
            Ok(c.execute("DELETE FROM webhooks WHERE token = ?1", [token])? > 0)
        })
        .await
    }

    async fn rotate_token(&self, current: &Token, rotation: &Rotation) -> StoreResult<Webhook> {
        let current = current.reveal();
        let rotation = *rotation;
        self.write(move |c| {
            let webhook: Webhook = c
                .prepare_cached("SELECT data FROM webhooks WHERE token = ?1")?
                .query_row([&current], |r| from_json(&r.get::<_, String>(0)?))
                .optional()?
                .ok_or(StoreError::NotFound)?;
            let rotated = webhook.rotated(&rotation);
            let new = rotated.token.reveal();
            let moved = c
                .prepare_cached("UPDATE webhooks SET token = ?2, data = ?3 WHERE token = ?1")?
                .execute(params![current, new, to_json(&rotated)?]);
            match moved {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(Conflict::TokenTaken));
                }
                Err(e) => return Err(e.into()),
            }
            c.execute(
                "UPDATE webhook_refusals SET token = ?2 WHERE token = ?1",
                [&current, &new],
            )?;
            // Only the token just replaced keeps answering: the webhook's
            // earlier alias goes. REPLACE overwrites an expired, unpurged
            // alias row of `current` that another webhook left behind.
            c.execute(
                "DELETE FROM webhook_previous_tokens WHERE current_token = ?1",
                [&current],
            )?;
            c.execute(
                "INSERT OR REPLACE INTO webhook_previous_tokens (token, current_token, expires_at)
                 VALUES (?1, ?2, ?3)",
                params![current, new, rotation.previous_expires_at.0],
            )?;
            Ok(rotated)
        })
        .await
    }

    async fn record_refusal(&self, token: &Token, code: &str, at: Timestamp) -> StoreResult<()> {
        let token = token.reveal().to_owned();
        let code = code.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO webhook_refusals (token, refused, last_code, last_at)
                 SELECT token, 1, ?2, ?3 FROM webhooks WHERE token = ?1
                 ON CONFLICT (token) DO UPDATE SET refused = refused + 1,
                     last_code = excluded.last_code, last_at = excluded.last_at",
            )?
            .execute(params![token, code, at.0])?;
            Ok(())
        })
        .await
    }

    async fn refusals(&self, token: &Token) -> StoreResult<Option<Refusals>> {
        let token = token.reveal().to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT refused, last_code, last_at FROM webhook_refusals WHERE token = ?1",
            )?
            .query_row([token], |r| {
                Ok(Refusals {
                    refused: r.get::<_, i64>(0)? as u64,
                    last_code: r.get(1)?,
                    last_at: Timestamp(r.get(2)?),
                })
            })
            .optional()
        })
        .await
    }
}
