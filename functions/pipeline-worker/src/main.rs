//! Lambda `pipeline-worker`: runs the pipelines of an SQS batch and reports the
//! messages that did not finish (partial batch response).

use aws_lambda_events::event::sqs::SqsEvent;
use hookflow_core::lambda::handle_sqs;
use hookflow_core::wiring::FunctionContext;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let (worker, queue) = FunctionContext::from_env().await?.worker()?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let (worker, queue) = (&worker, queue.as_ref());
        async move { Ok::<_, Error>(handle_sqs(worker, queue, event.payload).await) }
    }))
    .await
}
