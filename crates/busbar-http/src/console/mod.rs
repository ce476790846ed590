//! The web console: the pages an operator opens at `/` to watch the namespace and repair
//! what went wrong (counts, rates, message browsing, resubmitting dead letters, entities
//! and rules). Plain HTML, CSS and JavaScript modules embedded in the binary, so running
//! the broker needs no Node or build step.
//!
//! The assets are public and hold no data: every figure the pages show comes from the
//! JSON APIs (`/api/...`, `/api/console/...`) under the same SAS authorization as any other
//! client. A strict content security policy keeps the pages to their own scripts, so a
//! message body or entity name shown on a page can never run as code.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Where the assets other than the page itself are served from.
pub const ASSET_PREFIX: &str = "/console/";

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Scripts, styles and requests only from the broker itself; inline SVG charts are built
/// through the DOM, which the policy allows.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The embedded assets by file name: (name, content type, contents).
const ASSETS: &[(&str, &str, &str)] = &[
    ("console.css", CSS, include_str!("console.css")),
    ("favicon.svg", SVG, include_str!("favicon.svg")),
    ("app.js", JAVASCRIPT, include_str!("app.js")),
    ("api.js", JAVASCRIPT, include_str!("api.js")),
    ("dom.js", JAVASCRIPT, include_str!("dom.js")),
    ("live.js", JAVASCRIPT, include_str!("live.js")),
    ("chart.js", JAVASCRIPT, include_str!("chart.js")),
    ("overview.js", JAVASCRIPT, include_str!("overview.js")),
    ("entity.js", JAVASCRIPT, include_str!("entity.js")),
    ("properties.js", JAVASCRIPT, include_str!("properties.js")),
    ("messages.js", JAVASCRIPT, include_str!("messages.js")),
    (
        "message_view.js",
        JAVASCRIPT,
        include_str!("message_view.js"),
    ),
    ("send.js", JAVASCRIPT, include_str!("send.js")),
    ("rules.js", JAVASCRIPT, include_str!("rules.js")),
];

/// `GET /` (the page) and `GET /console/{file}` (its scripts, styles and icon).
pub fn router() -> Router {
    Router::new()
        .route("/", get(page))
        .route("/console/{file}", get(asset))
}

async fn page() -> Response {
    embedded(HTML, include_str!("index.html"))
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => embedded(content_type, body),
        None => (StatusCode::NOT_FOUND, "no such console asset").into_response(),
    }
}

fn embedded(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        // A new broker version serves new assets: the browser revalidates every load.
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module a script imports is one the broker serves, so the page never breaks
    /// on a missing file.
    #[test]
    fn every_imported_module_is_embedded() {
        let served = |name: &str| ASSETS.iter().any(|(asset, _, _)| *asset == name);
        let page = include_str!("index.html");
        let sources = ASSETS
            .iter()
            .map(|(_, _, body)| *body)
            .chain(std::iter::once(page));
        for source in sources {
            for quoted in source.split(['"', '\'']) {
                let Some(file) = quoted
                    .strip_prefix("./")
                    .or_else(|| quoted.strip_prefix(ASSET_PREFIX))
                else {
                    continue;
                };
                if file.ends_with(".js") || file.ends_with(".css") || file.ends_with(".svg") {
                    assert!(served(file), "{file} is referenced but not embedded");
                }
            }
        }
    }
}
