//! Which routes a gateway answers. `serve` answers them all; each Lambda
//! function mounts only the group API Gateway sends it (template.yaml), so its
//! binary links no other group's code.
//!
//! Why function pointers and not a flag: the linker keeps only what the
//! program can reach. A handler here is reachable only through the [`Routes`]
//! value that names it, and a function's `main` names one group, so the
//! receive path, the management commands (pipelines, outgoing webhooks, the
//! YAML and expression engines) and their adapters' code stay out of the
//! functions that never run them. A route that is not mounted answers like an
//! unknown path: `404 route_not_found`.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};

use super::{ApiError, Gateway};
use crate::domain::Webhook;

/// A handler's answer, boxed so that handlers of different routes share one type.
pub(super) type Answering<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// An HTTP answer on its way.
type Answer<'a> = Answering<'a, Response<Bytes>>;

/// The receive group: `webhook.receive` (and its alias) and the health check.
#[derive(Clone, Copy)]
pub(super) struct ReceiveRoutes {
    /// The webhook of a token given in the head, looked up before the body is read.
    pub admit: for<'a> fn(&'a Gateway, &'a Parts) -> Answering<'a, Option<Webhook>>,
    pub receive: for<'a> fn(&'a Gateway, Request<Bytes>, Option<Webhook>) -> Answer<'a>,
    pub health: for<'a> fn(&'a Gateway) -> Answer<'a>,
}

/// The management group: `/api/v3/command/<name>` behind the admin token (and,
/// where the build has them, the OpenAPI document and the web console).
#[derive(Clone, Copy)]
pub(super) struct CommandRoutes {
    pub authorize: for<'a> fn(&'a Gateway, &'a Parts) -> Answering<'a, ()>,
    pub command: for<'a> fn(&'a Gateway, String, Request<Bytes>) -> Answer<'a>,
}

/// The result group: long polling on `/api/v3/result`.
pub(super) type ResultRoute = for<'a> fn(&'a Gateway, Request<Bytes>) -> Answer<'a>;

/// The route groups a [`Gateway`] answers.
#[derive(Clone, Copy)]
pub struct Routes {
    pub(super) receive: Option<ReceiveRoutes>,
    pub(super) result: Option<ResultRoute>,
    pub(super) commands: Option<CommandRoutes>,
}

const RECEIVE_HANDLERS: ReceiveRoutes = ReceiveRoutes {
    admit: |gateway, head| Box::pin(gateway.webhook_of_head(head)),
    receive: |gateway, req, webhook| Box::pin(gateway.receive(req, webhook)),
    health: |gateway| Box::pin(gateway.health()),
};

const RESULT_HANDLER: ResultRoute = |gateway, req| Box::pin(gateway.poll_result(req));

const COMMAND_HANDLERS: CommandRoutes = CommandRoutes {
    authorize: |gateway, head| Box::pin(gateway.authorize_admin(&head.headers)),
    command: |gateway, name, req| Box::pin(async move { gateway.command(&name, req).await }),
};

impl Routes {
    /// Every route: `hookflow serve`, and the tests.
    pub const ALL: Routes = Routes {
        receive: Some(RECEIVE_HANDLERS),
        result: Some(RESULT_HANDLER),
        commands: Some(COMMAND_HANDLERS),
    };

    /// The `webhook-receive` function: `webhook.receive`, its alias, and `/api/v3/health`.
    pub const RECEIVE: Routes = Routes {
        receive: Some(RECEIVE_HANDLERS),
        result: None,
        commands: None,
    };

    /// The `result-poll` function: `/api/v3/result`.
    pub const RESULT: Routes = Routes {
        receive: None,
        result: Some(RESULT_HANDLER),
        commands: None,
    };

    /// The `webhook-admin` function: the management commands, the OpenAPI
    /// document and the console.
    pub const MANAGEMENT: Routes = Routes {
        receive: None,
        result: None,
        commands: Some(COMMAND_HANDLERS),
    };
}
