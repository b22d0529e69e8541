//! Bearer-token authentication (`--auth-token`, or `SLUICE_AUTH_TOKEN`).
//!
//! With a token set, every request that changes something (any method but GET and
//! HEAD: POST /sql, POST /sources/{name}, DELETE, POST /clock/advance) must carry
//! `Authorization: Bearer <token>`. With `--auth-reads`, reads need it too, except
//! the dashboard's own files (so it can load and ask for the token) and
//! `GET /health` (liveness probes). A browser's EventSource cannot send headers, so
//! a read may pass the token as `?access_token=` instead. Tokens are compared in
//! constant time.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::ApiError;

/// Who may do what; `None` in [`crate::config::ApiLimits::auth`] means open.
#[derive(Clone)]
pub struct Auth {
    token: String,
    /// Reads need the token too (`--auth-reads`).
    pub reads: bool,
}

impl std::fmt::Debug for Auth {
    // Never print the token (configurations are logged and shown in panics).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &"<redacted>")
            .field("reads", &self.reads)
            .finish()
    }
}

impl Auth {
    pub fn new(token: String, reads: bool) -> Auth {
        Auth { token, reads }
    }

    fn accepts(&self, presented: &str) -> bool {
        // Lengths differ only when the token is wrong; ct_eq compares equal lengths
        // in constant time and returns false at once otherwise, which reveals only
        // the length of the token.
        presented.as_bytes().ct_eq(self.token.as_bytes()).into()
    }

    /// Whether `request` needs the token.
    fn guards(&self, method: &Method, path: &str) -> bool {
        let read = method == Method::GET || method == Method::HEAD;
        if !read {
            return true;
        }
        let open = path == "/" || path == "/health" || path.starts_with("/ui/");
        self.reads && !open
    }
}

pub async fn require(State(auth): State<Option<Auth>>, request: Request, next: Next) -> Response {
    if let Some(refused) = cross_origin(&request) {
        return refused;
    }
    let Some(auth) = auth else {
        return next.run(request).await;
    };
    if !auth.guards(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let read = request.method() == Method::GET || request.method() == Method::HEAD;
    match presented(&request, read) {
        Some(token) if auth.accepts(token) => next.run(request).await,
        Some(_) => refuse("the bearer token is not valid for this server"),
        None if read => refuse(
            "this server needs a token to read (--auth-reads): send 'Authorization: Bearer <token>' or ?access_token=<token>",
        ),
        None => refuse(
            "this request changes the server: send 'Authorization: Bearer <token>' with the token given to --auth-token",
        ),
    }
}

/// A browser on another site may send a "simple" POST (a text/plain body needs no
/// preflight) to a server on this machine; it marks it with its `Origin`. A request
/// that changes something is refused when its Origin is not this server's own (the
/// dashboard's requests are same-origin; curl and other programs send no Origin).
fn cross_origin(request: &Request) -> Option<Response> {
    let method = request.method();
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return None;
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)?
        .to_str()
        .unwrap_or("");
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    if !host.is_empty() && authority.eq_ignore_ascii_case(host) {
        return None;
    }
    Some(
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "a request from the web page of another origin ({origin}) may not change this server"
            ),
        )
        .into_response(),
    )
}

/// The token of the `Authorization: Bearer` header, or of `?access_token=` on a read.
fn presented(request: &Request, read: bool) -> Option<&str> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    if !read {
        return None;
    }
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token="))
}

fn refuse(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"sluice\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_always_need_the_token_reads_only_with_auth_reads() {
        let open_reads = Auth::new("t".into(), false);
        let closed_reads = Auth::new("t".into(), true);
        for (method, path) in [
            (Method::POST, "/sql"),
            (Method::POST, "/sources/s"),
            (Method::DELETE, "/queries/q"),
            (Method::POST, "/clock/advance"),
            (Method::PUT, "/anything"),
        ] {
            assert!(open_reads.guards(&method, path), "{method} {path}");
            assert!(closed_reads.guards(&method, path), "{method} {path}");
        }
        for path in ["/queries", "/queries/q/stream", "/metrics", "/sources"] {
            assert!(!open_reads.guards(&Method::GET, path), "{path}");
            assert!(closed_reads.guards(&Method::GET, path), "{path}");
        }
        for path in ["/", "/ui/app.js", "/health"] {
            assert!(!closed_reads.guards(&Method::GET, path), "{path}");
        }
    }

    #[test]
    fn only_the_exact_token_is_accepted() {
        let auth = Auth::new("s3cret-token".into(), false);
        assert!(auth.accepts("s3cret-token"));
        for wrong in [
            "",
            "s3cret-toke",
            "s3cret-token2",
            "S3CRET-TOKEN",
            "x".repeat(12).as_str(),
        ] {
            assert!(!auth.accepts(wrong), "{wrong}");
        }
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
