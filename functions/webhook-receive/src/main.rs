//! Lambda `webhook-receive`: `webhook.receive`, the URL partners call.

use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use hookflow_core::lambda::handle_http;
use hookflow_core::wiring::FunctionContext;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let gateway = FunctionContext::from_env().await?.receive_gateway();
    run(service_fn(|event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let gateway = &gateway;
        async move { Ok::<_, Error>(handle_http(gateway, event.payload).await) }
    }))
    .await
}
