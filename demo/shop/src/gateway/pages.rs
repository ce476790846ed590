//! The web pages: plain HTML with a little JavaScript, embedded in the binary (no build
//! step). They call the same public JSON API as any client; the session token lives in the
//! browser's localStorage.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;

const STYLE: &str = include_str!("pages/style.css");
const SCRIPT: &str = include_str!("pages/app.js");

/// A page: its path, its title in the navigation (none: not in the navigation), its body.
struct Page {
    path: &'static str,
    title: &'static str,
    in_navigation: bool,
    body: &'static str,
}

const PAGES: &[Page] = &[
    Page {
        path: "/login",
        title: "Sign in",
        in_navigation: false,
        body: include_str!("pages/login.html"),
    },
    Page {
        path: "/orders",
        title: "Orders",
        in_navigation: true,
        body: include_str!("pages/orders.html"),
    },
    Page {
        path: "/dashboard",
        title: "Analytics",
        in_navigation: true,
        body: include_str!("pages/dashboard.html"),
    },
    Page {
        path: "/mailbox",
        title: "Mailbox",
        in_navigation: true,
        body: include_str!("pages/mailbox.html"),
    },
    Page {
        path: "/dead-letters",
        title: "Dead letters",
        in_navigation: true,
        body: include_str!("pages/dead_letters.html"),
    },
];

fn render(page: &Page) -> String {
    let navigation: String = PAGES
        .iter()
        .filter(|other| other.in_navigation)
        .map(|other| {
            let current = if other.path == page.path {
                " class=\"current\""
            } else {
                ""
            };
            format!("<a href=\"{}\"{current}>{}</a>", other.path, other.title)
        })
        .collect();
    // Signed out (the sign-in page), there is nowhere else to go yet.
    let (navigation, account) = if page.in_navigation {
        let account =
            "<span class=\"who\" id=\"who\"></span> <a href=\"#\" id=\"logout\">Log out</a>";
        (navigation, account)
    } else {
        (String::new(), "")
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Shop</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/app.js\"></script></head><body>\
         <header><span class=\"brand\">Shop</span><nav>{navigation}</nav>{account}</header>\
         <main>{body}</main></body></html>\n",
        title = page.title,
        body = page.body,
    )
}

pub fn router() -> Router {
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::to("/orders") }))
        .route(
            "/assets/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route(
            "/assets/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
                    .into_response()
            }),
        );
    for page in PAGES {
        let html = render(page);
        router = router.route(page.path, get(move || async move { Html(html) }));
    }
    router
}
