//! The guarded HTTP adapter of the [`Transport`] port (reqwest), and the DNS
//! resolver that holds every resolved address to the SSRF guard.

use std::time::Duration;

use async_trait::async_trait;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::outgoing::guard::Guard;
use crate::outgoing::settings::OutgoingSettings;
use crate::ports::{CallError, OutgoingRequest, OutgoingResponse, Transport};

/// The `User-Agent` of every outgoing call (a request's own header wins).
const USER_AGENT: &str = concat!("hookflow/", env!("CARGO_PKG_VERSION"));

/// [`Transport`] over HTTP(S) with reqwest, behind the SSRF [`Guard`].
///
/// Every host name is resolved anew for each connection by a resolver that drops
/// the addresses the guard refuses and hands the connector only the checked
/// ones, so the connection goes to an address that was checked (no DNS-rebinding
/// window). IP-literal hosts, which reqwest does not resolve, are checked before
/// sending. Redirects are not followed (a 3xx is the answer), proxies from the
/// environment are ignored, and the answer's body is read up to
/// `max_response_bytes`.
pub struct HttpTransport {
    client: reqwest::Client,
    guard: Arc<Guard>,
    connect_timeout: Duration,
    total_timeout: Duration,
    max_response_bytes: usize,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("guard", &self.guard)
            .field("connect_timeout", &self.connect_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// Builds the client once; it is reused (with its connection pool) by every call.
    pub fn new(settings: &OutgoingSettings) -> Result<Self, String> {
        let guard = Arc::new(Guard::new(settings.allow.clone()));
        let client = reqwest::Client::builder()
            .dns_resolver(GuardedResolver {
                guard: Arc::clone(&guard),
            })
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))?;
        Ok(HttpTransport {
            client,
            guard,
            connect_timeout: settings.connect_timeout,
            total_timeout: settings.total_timeout,
            max_response_bytes: settings.max_response_bytes,
        })
    }

    /// Validates the URL: http(s) only, and an IP-literal host must pass the guard.
    fn checked_url(&self, url: &str) -> Result<reqwest::Url, CallError> {
        let url = reqwest::Url::parse(url).map_err(|_| unreachable("invalid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(unreachable("unsupported scheme"));
        }
        let host = url
            .host_str()
            .ok_or_else(|| unreachable("the URL has no host"))?;
        // The URL parser has normalised IPv4 literals (`0x7f.1`, `2130706433`)
        // to dotted form.
        self.guard.check_host(host).map_err(CallError::Blocked)?;
        Ok(url)
    }

    async fn send(
        &self,
        url: reqwest::Url,
        request: OutgoingRequest,
    ) -> Result<OutgoingResponse, CallError> {
        let mut response = self
            .client
            .request(request.method, url)
            .headers(request.headers)
            .body(request.body)
            .send()
            .await
            .map_err(|e| self.map_error(e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let limit = self.max_response_bytes;
        let too_large = CallError::TooLarge { status, limit };
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(too_large);
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.map_error(e))? {
            if body.len() + chunk.len() > limit {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(OutgoingResponse {
            status,
            headers,
            body: body.freeze(),
        })
    }

    /// Turns a reqwest error into a [`CallError`] whose text holds neither the
    /// URL nor anything sent or received.
    fn map_error(&self, err: reqwest::Error) -> CallError {
        if let Some(blocked) = find_source::<BlockedByGuard>(&err) {
            return CallError::Blocked(blocked.0.clone());
        }
        if err.is_timeout() {
            return CallError::TimedOut(if err.is_connect() {
                self.connect_timeout
            } else {
                self.total_timeout
            });
        }
        if let Some(failed) = find_source::<LookupFailed>(&err) {
            return CallError::Unreachable(failed.to_string());
        }
        let cause = root_cause(&err);
        if err.is_connect() {
            return match find_source::<std::io::Error>(&err).map(std::io::Error::kind) {
                Some(std::io::ErrorKind::ConnectionRefused) => unreachable("connection refused"),
                _ => CallError::Unreachable(format!("could not connect: {cause}")),
            };
        }
        if err.is_body() || err.is_decode() {
            return CallError::Unreachable(format!("the answer broke off: {cause}"));
        }
        CallError::Unreachable(format!("the call failed: {cause}"))
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn call(&self, request: OutgoingRequest) -> Result<OutgoingResponse, CallError> {
        let url = self.checked_url(&request.url)?;
        // reqwest's own total timeout covers the body too; this is the hard cap.
        match tokio::time::timeout(self.total_timeout, self.send(url, request)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::TimedOut(self.total_timeout)),
        }
    }
}

fn unreachable(text: &str) -> CallError {
    CallError::Unreachable(text.to_owned())
}

/// The first error of type `E` in `err`'s chain of sources.
fn find_source<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = err.source();
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<E>() {
            return Some(found);
        }
        next = current.source();
    }
    None
}

/// The text of the deepest cause of `err` that is not a reqwest error (whose
/// text would hold the URL); reqwest's own text without the URL if there is none.
fn root_cause(err: &reqwest::Error) -> String {
    let mut cause: Option<&(dyn StdError + 'static)> = None;
    let mut next = err.source();
    while let Some(current) = next {
        if !current.is::<reqwest::Error>() {
            cause = Some(current);
        }
        next = current.source();
    }
    match cause {
        Some(cause) => cause.to_string(),
        None => {
            let mut text = err.to_string();
            if let Some(url) = err.url() {
                text = text.replace(url.as_str(), "…");
            }
            text
        }
    }
}

/// The resolver's answer when every address of a name is refused by the guard.
#[derive(Debug)]
struct BlockedByGuard(String);

impl std::fmt::Display for BlockedByGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for BlockedByGuard {}

/// The resolver's answer when the name does not resolve.
#[derive(Debug)]
struct LookupFailed(String);

impl std::fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DNS lookup failed: {}", self.0)
    }
}

impl StdError for LookupFailed {}

/// Resolves with the system resolver (through tokio) on every call and keeps
/// only the addresses the guard lets through.
struct GuardedResolver {
    guard: Arc<Guard>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = Arc::clone(&self.guard);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| LookupFailed(e.to_string()))?;
            let mut kept: Vec<SocketAddr> = Vec::new();
            let mut refused: Option<String> = None;
            let mut any = false;
            for addr in resolved {
                any = true;
                match guard.check(addr.ip()) {
                    Ok(()) => {
                        if !kept.contains(&addr) {
                            kept.push(addr);
                        }
                    }
                    Err(reason) => {
                        refused.get_or_insert(reason);
                    }
                }
            }
            if !any {
                return Err(LookupFailed("no addresses".into()).into());
            }
            if kept.is_empty() {
                let reason = refused.unwrap_or_default();
                return Err(BlockedByGuard(format!("{host}: {reason}")).into());
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

/// [`HttpTransport`] built on the first call, so functions that never call out
/// never pay for the client.
pub struct LazyHttpTransport {
    settings: OutgoingSettings,
    client: OnceLock<Result<HttpTransport, String>>,
}

#[async_trait]
impl Transport for LazyHttpTransport {
    async fn call(&self, request: OutgoingRequest) -> Result<OutgoingResponse, CallError> {
        match self
            .client
            .get_or_init(|| HttpTransport::new(&self.settings))
        {
            Ok(client) => client.call(request).await,
            Err(problem) => Err(CallError::Unreachable(format!(
                "the HTTP client could not be built: {problem}"
            ))),
        }
    }
}

impl LazyHttpTransport {
    /// The transport `settings` describe, not built yet.
    pub fn new(settings: &OutgoingSettings) -> Self {
        LazyHttpTransport {
            settings: settings.clone(),
            client: OnceLock::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, Method};

    use super::*;
    use crate::testkit::endpoint::{Endpoint, Reply, closed_port};

    fn settings(allow: &[&str]) -> OutgoingSettings {
        OutgoingSettings {
            allow: allow.iter().map(|n| n.parse().unwrap()).collect(),
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(10),
            max_response_bytes: 1024,
            ..OutgoingSettings::default()
        }
    }

    fn transport(allow: &[&str]) -> HttpTransport {
        HttpTransport::new(&settings(allow)).unwrap()
    }

    fn get(url: String) -> OutgoingRequest {
        OutgoingRequest {
            method: Method::GET,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    fn assert_blocked(result: Result<OutgoingResponse, CallError>, mentions: &str) {
        match result {
            Err(CallError::Blocked(reason)) => {
                assert!(
                    reason.contains(mentions),
                    "{reason:?} should mention {mentions:?}"
                )
            }
            other => panic!("expected Blocked, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn loopback_is_blocked_without_an_allow_list_and_nothing_connects() {
        let endpoint = Endpoint::answering(Reply::text(200, "hello")).await;
        let port = endpoint.port;
        let transport = transport(&[]);

        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://127.1.2.3:{port}/"),
            format!("http://0x7f.1:{port}/"),
            format!("http://2130706433:{port}/"),
            format!("http://[::1]:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            format!("http://[::ffff:7f00:1]:{port}/"),
            format!("http://[64:ff9b::7f00:1]:{port}/"),
            format!("https://127.0.0.1:{port}/"),
        ] {
            assert_blocked(transport.call(get(url)).await, "loopback");
        }
        // A name goes through the guarded resolver.
        for url in [
            format!("http://localhost:{port}/"),
            format!("http://LOCALHOST:{port}/x?token=secret"),
        ] {
            let result = transport.call(get(url)).await;
            assert_blocked(result.clone(), "localhost: ");
            assert!(!result.unwrap_err().to_string().contains("secret"));
        }
        assert_eq!(endpoint.accepted(), 0);
    }

    #[tokio::test]
    async fn the_metadata_endpoint_is_blocked_before_any_connection() {
        let transport = transport(&[]);
        let started = Instant::now();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/latest/meta-data/",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://10.0.0.1/",
            "http://[fe80::1]/",
        ] {
            let result = transport.call(get(url.into())).await;
            assert!(
                matches!(result, Err(CallError::Blocked(_))),
                "{url}: {result:?}"
            );
        }
        // A connection attempt to these would take until the connect timeout
        // (15 s); refused before any, all five take microseconds. The bound
        // leaves a busy CI room.
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn an_allowed_call_delivers_the_request_as_sent() {
        let endpoint = Endpoint::answering(
            Reply::status(201)
                .header("X-Reply", "yes")
                .header("Content-Type", "text/plain")
                .body(b"hello".to_vec()),
        )
        .await;
        let transport = transport(&["127.0.0.0/8"]);
        let mut headers = HeaderMap::new();
        headers.insert("x-custom", HeaderValue::from_static("custom-value"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let answer = transport
            .call(OutgoingRequest {
                method: Method::PUT,
                url: format!("http://127.0.0.1:{}/hook/path?a=1&b=two", endpoint.port),
                headers,
                body: Bytes::from_static(br#"{"x":1}"#),
            })
            .await
            .unwrap();

        assert_eq!(answer.status, 201);
        assert_eq!(answer.headers["x-reply"], "yes");
        assert_eq!(answer.body, Bytes::from_static(b"hello"));
        assert_eq!(endpoint.accepted(), 1);
        let requests = endpoint.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(
            (
                request.method.as_str(),
                request.path.as_str(),
                request.version.as_str()
            ),
            ("PUT", "/hook/path?a=1&b=two", "HTTP/1.1"),
            "{request:?}"
        );
        assert_eq!(request.header("x-custom"), Some("custom-value"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("content-length"), Some("7"));
        assert_eq!(
            request.header("user-agent"),
            Some(concat!("hookflow/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(request.body, br#"{"x":1}"#);
    }

    #[tokio::test]
    async fn a_name_resolves_to_its_allowed_addresses_only() {
        let endpoint = Endpoint::answering(Reply::text(200, "ok")).await;
        // `localhost` may also resolve to ::1, which is not allowed and dropped;
        // the call goes to the checked 127.0.0.1.
        let transport = transport(&["127.0.0.0/8"]);
        let answer = transport
            .call(get(format!("http://localhost:{}/ping", endpoint.port)))
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, Bytes::from_static(b"ok"));
        assert_eq!(endpoint.accepted(), 1);
        let request = &endpoint.requests()[0];
        assert_eq!(
            (
                request.method.as_str(),
                request.path.as_str(),
                request.version.as_str()
            ),
            ("GET", "/ping", "HTTP/1.1"),
            "{request:?}"
        );
    }

    #[tokio::test]
    async fn an_ipv6_allow_entry_admits_a_bracketed_literal() {
        let transport = transport(&["::1/128"]);
        // Not blocked: the guard lets it through, the connection is refused or
        // reaches nothing (nothing listens on [::1] at this port).
        let port = closed_port();
        let result = transport.call(get(format!("http://[::1]:{port}/"))).await;
        assert!(
            matches!(result, Err(CallError::Unreachable(_))),
            "{result:?}"
        );
        // The allow entry covers ::1 only.
        assert_blocked(
            transport
                .call(get(format!("http://127.0.0.1:{port}/")))
                .await,
            "loopback",
        );
    }

    #[tokio::test]
    async fn a_redirect_is_the_answer_and_is_not_followed() {
        let endpoint = Endpoint::answering(
            Reply::status(302).header("Location", "http://127.0.0.1:1/elsewhere"),
        )
        .await;
        let transport = transport(&["127.0.0.0/8"]);
        let answer = transport
            .call(get(format!("http://127.0.0.1:{}/", endpoint.port)))
            .await
            .unwrap();
        assert_eq!(answer.status, 302);
        assert_eq!(answer.headers["location"], "http://127.0.0.1:1/elsewhere");
        assert!(answer.body.is_empty());
        assert_eq!(endpoint.accepted(), 1);
    }

    #[tokio::test]
    async fn an_answer_larger_than_the_cap_is_too_large() {
        let transport = transport(&["127.0.0.0/8"]);

        // Announced by Content-Length.
        let endpoint = Endpoint::answering(Reply::status(200).body(vec![b'a'; 1025])).await;
        let result = transport
            .call(get(format!("http://127.0.0.1:{}/", endpoint.port)))
            .await;
        assert_eq!(
            result.unwrap_err(),
            CallError::TooLarge {
                status: 200,
                limit: 1024
            }
        );

        // Chunked, found out while reading.
        let endpoint =
            Endpoint::answering(Reply::status(500).body(vec![b'b'; 1200]).chunked(400)).await;
        let result = transport
            .call(get(format!("http://127.0.0.1:{}/", endpoint.port)))
            .await;
        assert_eq!(
            result.unwrap_err(),
            CallError::TooLarge {
                status: 500,
                limit: 1024
            }
        );

        // Exactly the cap is fine.
        let endpoint = Endpoint::answering(Reply::status(200).body(vec![b'c'; 1024])).await;
        let answer = transport
            .call(get(format!("http://127.0.0.1:{}/", endpoint.port)))
            .await
            .unwrap();
        assert_eq!(answer.body.len(), 1024);
    }

    #[tokio::test]
    async fn an_endpoint_that_never_answers_times_out() {
        let endpoint = Endpoint::never_answering().await;
        let transport = HttpTransport::new(&OutgoingSettings {
            total_timeout: Duration::from_millis(300),
            ..settings(&["127.0.0.0/8"])
        })
        .unwrap();
        let started = Instant::now();
        let result = transport
            .call(get(format!("http://127.0.0.1:{}/", endpoint.port)))
            .await;
        assert_eq!(
            result.unwrap_err(),
            CallError::TimedOut(Duration::from_millis(300))
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(endpoint.accepted(), 1);
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_the_text_holds_no_url() {
        let port = closed_port();
        let transport = transport(&["127.0.0.0/8"]);
        for url in [
            format!("http://127.0.0.1:{port}/p?token=secret"),
            format!("http://localhost:{port}/p?token=secret"),
        ] {
            match transport.call(get(url)).await {
                Err(CallError::Unreachable(text)) => {
                    assert!(!text.contains("secret"), "{text}");
                    assert!(!text.contains("http://"), "{text}");
                }
                other => panic!("expected Unreachable, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn only_http_and_https_urls() {
        let transport = transport(&[]);
        for url in [
            "ftp://example.com/file",
            "file:///etc/passwd",
            "gopher://x/",
        ] {
            assert_eq!(
                transport.call(get(url.into())).await.unwrap_err(),
                CallError::Unreachable("unsupported scheme".into()),
                "{url}"
            );
        }
        assert_eq!(
            transport.call(get("not a url".into())).await.unwrap_err(),
            CallError::Unreachable("invalid URL".into())
        );
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_unreachable() {
        let transport = HttpTransport::new(&OutgoingSettings {
            total_timeout: Duration::from_secs(5),
            ..settings(&[])
        })
        .unwrap();
        let result = transport
            .call(get("http://no-such-host.invalid/?token=secret".into()))
            .await;
        match result {
            Err(CallError::Unreachable(text)) => {
                assert!(text.starts_with("DNS lookup failed"), "{text}");
                assert!(!text.contains("secret"), "{text}");
            }
            // Without a reachable DNS server the lookup may only time out.
            Err(CallError::TimedOut(_)) => {}
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
}
