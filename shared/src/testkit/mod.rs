//! Port conformance suites: the same assertions for every adapter.
//!
//! An adapter's test calls e.g. `webhook_store_conformance(&store).await`; the
//! suite panics with a message naming the broken rule. Each suite uses fresh
//! random keys, so it can run against a shared, non-empty backend (moto).
//! `endpoint` is the recording, scripted HTTP endpoint outgoing calls go to.

mod dead_letters;
mod dedup;
pub mod endpoint;
mod eventlog;
mod events;
mod invocations;
mod outgoing;
mod pipelines;
mod queue;
pub mod services;
mod webhooks;

pub use dead_letters::dead_letters_conformance;
pub use dedup::dedup_conformance;
pub use eventlog::event_log_conformance;
pub use events::event_store_conformance;
pub use invocations::{invocation_store_conformance, sample_invocation};
pub use outgoing::{outgoing_store_conformance, sample_outgoing};
pub use pipelines::pipeline_store_conformance;
pub use queue::{event_intake_conformance, job_queue_conformance};
pub use webhooks::webhook_store_conformance;

use std::collections::BTreeMap;

use serde_json::json;

use crate::domain::{
    CorrelationId, Event, EventKey, EventRecord, PayloadType, Timestamp, Token, Webhook,
};

fn unique_key(prefix: &str) -> EventKey {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    EventKey::parse(&format!("{prefix}.{suffix}")).expect("valid key")
}

/// A webhook with fresh token and key.
pub fn sample_webhook() -> Webhook {
    let now = Timestamp::now();
    Webhook {
        token: Token::generate(),
        event_key: unique_key("webhook.test"),
        description: Some("conformance".into()),
        enabled: true,
        payload_type: PayloadType::Base64,
        max_payload_length: 1024,
        verify: None,
        allowed_sources: Vec::new(),
        previous_token: None,
        dedup: None,
        created_at: now,
        updated_at: now,
    }
}

/// An event record for `key` expiring `ttl_ms` from now.
pub fn sample_event(key: &EventKey, listeners: &[&str], ttl_ms: i64) -> EventRecord {
    let now = Timestamp::now();
    EventRecord {
        event: Event {
            correlation_id: CorrelationId::generate(),
            event_key: key.clone(),
            received_at: now,
            origin: json!("eyJhIjoxfQ=="),
            method: "POST".into(),
            content_type: Some("application/json".into()),
            headers: BTreeMap::from([("x-test".to_string(), "1".to_string())]),
            params: BTreeMap::from([("a".to_string(), json!(["1", "2"]))]),
            files: vec![],
            size: 7,
            replay_of: None,
        },
        listeners: listeners.iter().map(|s| s.to_string()).collect(),
        expires_at: Timestamp(now.0 + ttl_ms),
        retained_until: Timestamp(now.0 + ttl_ms),
    }
}
