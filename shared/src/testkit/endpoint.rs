//! The one test HTTP endpoint, for the core's unit tests and the integration
//! tests alike: it listens on `127.0.0.1:0`, records every request it gets
//! (method, path and query, version, headers, body bytes, arrival time),
//! answers from a script (a queue of replies, then a default one) and counts
//! the TCP connections it accepts.
//!
//! Two behaviours a normal HTTP server does not have are modes of it:
//! [`Endpoint::never_answering`] accepts connections and never reads or
//! answers, and [`closed_port`] is a port nobody listens on.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One request the endpoint received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent (`/hook?a=1`).
    pub path: String,
    /// `HTTP/1.1`.
    pub version: String,
    /// Header names in lower case, values as sent (lossy UTF-8), in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the request head arrived.
    pub at: Instant,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (any case).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// What the endpoint answers to one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Waits this long before answering.
    pub delay: Duration,
    /// Sends the body in chunks of this many bytes (`Transfer-Encoding:
    /// chunked`, no `Content-Length`), so its size is found out only while reading.
    pub chunk_size: Option<usize>,
}

impl Reply {
    /// A reply with no body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            chunk_size: None,
        }
    }

    /// A JSON reply.
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply::status(status)
            .header("content-type", "application/json")
            .body(value.to_string().into_bytes())
    }

    /// A plain-text reply.
    pub fn text(status: u16, text: &str) -> Reply {
        Reply::status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(text.as_bytes().to_vec())
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Reply {
        self.body = body;
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn chunked(mut self, chunk_size: usize) -> Reply {
        self.chunk_size = Some(chunk_size);
        self
    }
}

struct State {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    accepted: AtomicUsize,
    arrived: Notify,
}

/// The running endpoint; stops accepting when dropped.
pub struct Endpoint {
    pub port: u16,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// An endpoint that answers `200 {"ok":true}` unless scripted otherwise.
    pub async fn start() -> Endpoint {
        Self::answering(Reply::json(200, &serde_json::json!({"ok": true}))).await
    }

    /// An endpoint whose default reply is `default`.
    pub async fn answering(default: Reply) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            accepted: AtomicUsize::new(0),
            arrived: Notify::new(),
        });
        let task = tokio::spawn({
            let state = Arc::clone(&state);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    state.accepted.fetch_add(1, Ordering::SeqCst);
                    let state = Arc::clone(&state);
                    tokio::spawn(async move {
                        let service = service_fn(move |req| handle(Arc::clone(&state), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Endpoint { port, state, task }
    }

    /// An endpoint that accepts connections, counts them and keeps them open
    /// without reading or answering: a caller waits until its own timeout.
    pub async fn never_answering() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::status(500)),
            accepted: AtomicUsize::new(0),
            arrived: Notify::new(),
        });
        let task = tokio::spawn({
            let state = Arc::clone(&state);
            async move {
                // Held here, the connections close only when the endpoint is dropped.
                let mut held = Vec::new();
                while let Ok((stream, _)) = listener.accept().await {
                    state.accepted.fetch_add(1, Ordering::SeqCst);
                    held.push(stream);
                }
            }
        });
        Endpoint { port, state, task }
    }

    /// Queues replies for the next requests, in order; the default answers after them.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// Replaces the default reply.
    pub fn set_default(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = reply;
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` requests arrived (panics after `timeout`).
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.arrived.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "the endpoint got {} requests within {timeout:?}, expected {count}",
                    self.requests().len()
                );
            }
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port nothing listens on (bound, read and released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let at = Instant::now();
    let method = request.method().to_string();
    let version = format!("{:?}", request.version());
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    // The reply is taken when the request is recorded, so replies follow the
    // order of arrival.
    let reply = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(Recorded {
            method,
            path,
            version,
            headers,
            body,
            at,
        });
        let scripted = state.script.lock().unwrap().pop_front();
        scripted.unwrap_or_else(|| state.default.lock().unwrap().clone())
    };
    state.arrived.notify_waiters();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let body = match reply.chunk_size {
        // A body of unknown length is what makes hyper send it chunked.
        Some(size) => {
            let frames: Vec<Result<Frame<Bytes>, Infallible>> = reply
                .body
                .chunks(size.max(1))
                .map(|chunk| Ok(Frame::data(Bytes::copy_from_slice(chunk))))
                .collect();
            StreamBody::new(futures_util::stream::iter(frames)).boxed()
        }
        None => Full::new(Bytes::from(reply.body)).boxed(),
    };
    Ok(response.body(body).expect("a valid scripted reply"))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// What the endpoint writes on the wire for one `GET /`.
    async fn raw_answer(endpoint: &Endpoint) -> String {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", endpoint.port))
            .await
            .unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).to_ascii_lowercase()
    }

    #[tokio::test]
    async fn a_chunked_reply_has_no_length_and_a_plain_one_has() {
        let endpoint =
            Endpoint::answering(Reply::status(500).body(vec![b'b'; 10]).chunked(4)).await;
        let answer = raw_answer(&endpoint).await;
        assert!(answer.starts_with("http/1.1 500"), "{answer}");
        assert!(answer.contains("transfer-encoding: chunked"), "{answer}");
        assert!(!answer.contains("content-length"), "{answer}");

        endpoint.set_default(Reply::status(200).body(vec![b'c'; 10]));
        let answer = raw_answer(&endpoint).await;
        assert!(answer.contains("content-length: 10"), "{answer}");
        assert!(!answer.contains("transfer-encoding"), "{answer}");
        assert_eq!(endpoint.accepted(), 2);
    }

    #[tokio::test]
    async fn a_never_answering_endpoint_counts_connections_and_says_nothing() {
        let endpoint = Endpoint::never_answering().await;
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", endpoint.port))
            .await
            .unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await;
        assert!(read.is_err(), "no answer: {read:?}");
        assert_eq!(endpoint.accepted(), 1);
        assert!(endpoint.requests().is_empty());
    }
}
