//! `GET /console`: the operators' web console, a few static files embedded in
//! the binary (`shared/console/`), so it needs no CDN, no Node toolchain and no
//! file on disk. The page signs in with the admin token (kept in the tab's
//! `sessionStorage`) and calls the same `/api/v3` commands as curl and the CLI;
//! the files themselves hold nothing secret and are served without a token.

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{Response, StatusCode};

use super::ApiError;

/// Path of the console's page; its files are under `/console/`.
pub const CONSOLE_PATH: &str = "/console";

/// Scripts and styles only from the console's own files (no inline script, no
/// `eval`), calls only to this origin, never inside a frame, no forms posted
/// anywhere, and nothing else loaded.
const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("../../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console. `index.html` is also the answer to `/console`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("pages/webhooks.js", JS),
    asset!("pages/pipelines.js", JS),
    asset!("pages/events.js", JS),
    asset!("pages/outgoing.js", JS),
    asset!("pages/deadletters.js", JS),
];

/// Whether `path` (without a trailing `/`) is the console's.
pub(super) fn is_console_path(path: &str) -> bool {
    path == CONSOLE_PATH
        || path
            .strip_prefix(CONSOLE_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The console file at `path` (`/console` is its page), with the headers that
/// keep the page from being framed, leaking its URL, or running other script.
pub(super) fn serve(path: &str) -> Result<Response<Bytes>, ApiError> {
    let name = match path.strip_prefix(CONSOLE_PATH).unwrap_or("") {
        "" | "/" => "index.html",
        rest => rest.trim_start_matches('/'),
    };
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found("route_not_found", "no such file of the console"))?;
    let mut answer = Response::new(Bytes::from_static(asset.body.as_bytes()));
    *answer.status_mut() = StatusCode::OK;
    let headers = answer.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Small files, asked again on every load, so a new version shows at once.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::{Method, Request};

    use crate::config::Settings;
    use crate::ports::Ports;

    async fn get(method: Method, path: &str) -> Response<Bytes> {
        let gateway = crate::wiring::gateway(Ports::memory(), Settings::default());
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Bytes::new());
        gateway.handle(request.unwrap()).await
    }

    #[tokio::test]
    async fn the_console_is_served_without_a_token_with_strict_headers() {
        for (path, content_type) in [
            ("/console", "text/html; charset=utf-8"),
            ("/console/", "text/html; charset=utf-8"),
            ("/console/app.js", JS),
            ("/console/pages/events.js", JS),
            ("/console/console.css", "text/css; charset=utf-8"),
        ] {
            let answer = get(Method::GET, path).await;
            assert_eq!(answer.status(), 200, "{path}");
            let headers = answer.headers();
            assert_eq!(headers[CONTENT_TYPE], content_type, "{path}");
            assert_eq!(
                headers[CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY_VALUE
            );
            assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
            assert_eq!(headers[REFERRER_POLICY], "no-referrer");
            assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(headers.get(http::header::SET_COOKIE).is_none());
        }
        let policy = CONTENT_SECURITY_POLICY_VALUE;
        assert!(policy.contains("script-src 'self';") && !policy.contains("unsafe"));
    }

    #[tokio::test]
    async fn only_get_and_only_its_own_files() {
        let answer = get(Method::POST, "/console").await;
        assert_eq!(answer.status(), 405);
        assert_eq!(answer.headers()[http::header::ALLOW], "GET");
        let answer = get(Method::GET, "/console/secret.js").await;
        assert_eq!(answer.status(), 404);
        let body: serde_json::Value = serde_json::from_slice(answer.body()).unwrap();
        assert_eq!(body["error"]["code"], "route_not_found");
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        // An `import … from "./x.js"` or `<script src>` naming a file missing
        // from ASSETS would load in development from disk and fail when served.
        for asset in ASSETS {
            for reference in references(asset.body) {
                let resolved = resolve(asset.name, &reference);
                assert!(
                    ASSETS.iter().any(|a| a.name == resolved),
                    "{} refers to {reference} ({resolved}), which is not served",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = ASSETS[0].body;
        assert!(!page.contains("<script>"), "inline script in index.html");
        assert!(!page.contains("style="), "inline style in index.html");
        assert!(!page.contains("<style"), "inline style in index.html");
        assert!(
            !page.contains(" on"),
            "an inline event handler in index.html"
        );
    }

    #[test]
    fn paths_outside_the_console_are_not_its_own() {
        assert!(is_console_path("/console"));
        assert!(is_console_path("/console/app.js"));
        assert!(!is_console_path("/consoles"));
        assert!(!is_console_path("/api/v3/console"));
        assert!(serve("/console/../openapi.json").is_err());
        assert!(serve("/console/app.js").is_ok());
        assert!(serve("/console").is_ok());
    }

    /// What a file imports or loads: `from "…"`, `import("…")`, `src="…"`, `href="…"`.
    fn references(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for marker in ["from \"", "import(\"", "src=\"", "href=\""] {
            let mut rest = text;
            while let Some(at) = rest.find(marker) {
                rest = &rest[at + marker.len()..];
                if let Some(end) = rest.find('"') {
                    let target = &rest[..end];
                    if target.starts_with("./")
                        || target.starts_with("../")
                        || target.starts_with("/console/")
                    {
                        found.push(target.to_owned());
                    }
                }
            }
        }
        found
    }

    /// `reference` as a name in ASSETS, resolved against the file `from`.
    fn resolve(from: &str, reference: &str) -> String {
        if let Some(absolute) = reference.strip_prefix("/console/") {
            return absolute.to_owned();
        }
        let mut parts: Vec<&str> = from.split('/').collect();
        parts.pop();
        for segment in reference.split('/') {
            match segment {
                "." => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        parts.join("/")
    }
}
