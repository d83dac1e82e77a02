//! Lambda `webhook-admin`: the management commands (`webhook.*`, `pipeline.*`).

use hookflow_core::lambda::{FunctionContext, handle_http};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let gateway = FunctionContext::from_env().await?.gateway(true)?;
    run(service_fn(|request| async {
        Ok::<_, Error>(handle_http(&gateway, request).await)
    }))
    .await
}
