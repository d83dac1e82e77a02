//! `serve --metrics-addr`: Prometheus text at `/metrics` on a listener of its
//! own, so the scrape port can stay private while the API is public.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hookflow_core::metrics::{SECONDS_BUCKETS, describe, queue_measured};
use hookflow_core::ports::QueueDepthGauge;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A scrape connection may stay idle this long; a scraper asks every 15–60 s
/// and reconnects, and nobody else should be here.
const SCRAPE_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most scrape connections served at once.
const MAX_SCRAPERS: usize = 8;
/// Longest a scrape waits for the queue's counts; past it the gauges keep
/// their last values, so a slow store never stalls the scrape.
const QUEUE_COUNT_TIMEOUT: Duration = Duration::from_secs(2);

/// Installs the Prometheus recorder and serves it on `addr` until `stopping`;
/// answers the address it listens on (port 0 picks one). Each scrape counts
/// the queue through `queue_depth` first, so the gauges are as of the scrape.
pub async fn serve_metrics(
    addr: SocketAddr,
    queue_depth: Arc<dyn QueueDepthGauge>,
    mut stopping: watch::Receiver<bool>,
) -> anyhow::Result<SocketAddr> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .context("metric buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe();
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    // The recorder keeps histogram samples until upkeep folds them into buckets.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPERS));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopping.wait_for(|stop| *stop) => break,
            };
            let Ok((stream, _)) = accepted else { continue };
            // Over the cap, a connection is closed at once rather than queued.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let handle = handle.clone();
            let queue_depth = queue_depth.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let handle = handle.clone();
                    let queue_depth = queue_depth.clone();
                    async move {
                        if req.uri().path() == "/metrics" {
                            count_queue(queue_depth.as_ref()).await;
                        }
                        Ok::<_, Infallible>(scrape(&handle, &req))
                    }
                });
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(SCRAPE_IDLE_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                drop(slot);
            });
        }
    });
    Ok(bound)
}

/// Sets the queue gauges from a fresh count; on failure they keep their last
/// values and the log says why.
async fn count_queue(queue_depth: &dyn QueueDepthGauge) {
    match tokio::time::timeout(QUEUE_COUNT_TIMEOUT, queue_depth.queue_depth()).await {
        Ok(Ok(depth)) => queue_measured(depth),
        Ok(Err(err)) => tracing::warn!(error = %err, "counting the queue for the metrics failed"),
        Err(_) => tracing::warn!(
            "counting the queue for the metrics took over {QUEUE_COUNT_TIMEOUT:?}; the gauges keep their last values"
        ),
    }
}

fn scrape(handle: &PrometheusHandle, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body, content_type) = if req.uri().path() == "/metrics" {
        (
            StatusCode::OK,
            handle.render(),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            "metrics are at /metrics\n".to_owned(),
            "text/plain; charset=utf-8",
        )
    };
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    answer
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use hookflow_core::ports::{QueueDepth, StoreResult};

    use super::*;

    /// A queue whose count never comes (a hung store).
    struct Hung;

    #[async_trait]
    impl QueueDepthGauge for Hung {
        async fn queue_depth(&self) -> StoreResult<QueueDepth> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_scrape_waits_for_the_queue_count_at_most_its_timeout() {
        let started = tokio::time::Instant::now();
        let waited = tokio::time::timeout(QUEUE_COUNT_TIMEOUT * 5, count_queue(&Hung)).await;
        assert!(waited.is_ok(), "a hung count held the scrape");
        assert!(started.elapsed() >= QUEUE_COUNT_TIMEOUT);
    }
}
