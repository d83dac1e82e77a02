//! Trigger, send, record, retry: what the API and the pipeline command share.

use std::sync::Arc;

use crate::config::OutgoingSettings;
use crate::pipeline::worker::Disposition;
use crate::ports::{InvocationStore, JobQueue, OutgoingStore};

use super::model::ReferenceId;
use super::transport::Transport;

/// The outgoing-webhook service over its ports.
pub struct Outgoing {
    pub(crate) registry: Arc<dyn OutgoingStore>,
    pub(crate) invocations: Arc<dyn InvocationStore>,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) settings: OutgoingSettings,
}

impl Outgoing {
    /// Makes the next attempt of an asynchronous delivery (a queued job).
    pub async fn deliver(&self, _id: &ReferenceId) -> Disposition {
        todo!("being written")
    }
}
