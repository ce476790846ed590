//! The authorization and email services behind the gateway, as real processes with a real
//! broker: an account's life through the public API and its mailbox, and the internal
//! services refusing whoever skips the gateway.

mod harness;
mod support;

use harness::SECRET;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::Stack;

const SERVICES: &[&str] = &["auth", "email", "gateway"];

async fn register(shop: &Stack, credentials: Value) -> (StatusCode, Value) {
    shop.call(Method::POST, "/api/auth/register", None, Some(credentials))
        .await
}

async fn login(shop: &Stack, email: &str, password: &str) -> (StatusCode, Value) {
    shop.call(
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({ "email": email, "password": password })),
    )
    .await
}

fn token_of(session: &Value) -> String {
    session["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {session}"))
        .to_owned()
}

#[tokio::test]
async fn register_welcome_login_logout_and_recovery_through_the_mailbox() {
    let shop = Stack::start(SERVICES, &[]).await;
    let credentials = json!({ "email": "ann@example.com", "password": "first password" });

    let (status, body) = shop
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(credentials.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = shop
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(credentials.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].is_string());
    let (status, body) = shop
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({ "email": "not an address", "password": "long enough" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = login(&shop, "ann@example.com", "wrong password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, session) = login(&shop, "ann@example.com", "first password").await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = token_of(&session);

    let welcome = shop.mail_with_subject(&token, "Welcome").await;
    assert_eq!(welcome["to"], "ann@example.com");
    assert!(
        welcome["sent_at"].as_i64().is_some_and(|at| at > 0),
        "{welcome}"
    );

    // Logout revokes the token: the same token is refused afterwards.
    let (status, _) = shop
        .call(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = shop
        .call(Method::GET, "/api/mailbox", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"].is_string());
    let (status, _) = shop.call(Method::GET, "/api/mailbox", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Recovery: the reset token arrives by mail; it works once; the old password no more.
    let (status, body) = shop
        .call(
            Method::POST,
            "/api/auth/recover",
            None,
            Some(json!({ "email": "ann@example.com" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, session) = login(&shop, "ann@example.com", "first password").await;
    let token = token_of(&session);
    let (reset_token, reset_mail) = shop.reset_token_by_mail(&token).await;
    let newest = shop.mailbox(&token).await;
    assert_eq!(newest[0]["subject"], reset_mail["subject"], "newest first");

    let reset = json!({ "token": reset_token, "password": "second password" });
    let (status, body) = shop
        .call(Method::POST, "/api/auth/reset", None, Some(reset.clone()))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = shop
        .call(Method::POST, "/api/auth/reset", None, Some(reset))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a used reset token: {body}"
    );
    let (status, _) = shop
        .call(Method::GET, "/api/mailbox", Some(&token), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a reset revokes the sessions"
    );
    let (status, _) = login(&shop, "ann@example.com", "first password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, session) = login(&shop, "ann@example.com", "second password").await;
    assert_eq!(status, StatusCode::OK, "{session}");
}

/// The welcome mail is written with the account (an outbox in the same transaction), so a
/// broker that is down at registration delays it but does not lose it.
#[tokio::test]
async fn a_welcome_mail_asked_for_while_the_broker_is_down_arrives_once_it_is_back() {
    let mut shop = Stack::start(SERVICES, &[]).await;
    shop.process("broker").stop();
    let credentials = json!({ "email": "dee@example.com", "password": "dee's password" });
    let (status, body) = register(&shop, credentials).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    shop.process("broker").restart().await;

    let (status, session) = login(&shop, "dee@example.com", "dee's password").await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = token_of(&session);
    shop.mail_with_subject(&token, "Welcome").await;
    // A later mail through the same queue: once it is in, a second welcome would be too.
    let (status, body) = shop
        .call(
            Method::POST,
            "/api/auth/recover",
            None,
            Some(json!({ "email": "dee@example.com" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    shop.mail_with_subject(&token, "Reset your password").await;
    let subjects: Vec<Value> = shop
        .mailbox(&token)
        .await
        .iter()
        .map(|mail| mail["subject"].clone())
        .collect();
    assert_eq!(
        subjects,
        [json!("Reset your password"), json!("Welcome to the shop")],
        "each mail once"
    );
}

#[tokio::test]
async fn a_request_that_skips_the_gateway_is_refused() {
    let shop = Stack::start(SERVICES, &[]).await;
    let credentials = json!({ "email": "bo@example.com", "password": "bo's password" });
    let (status, body) = register(&shop, credentials.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let direct = [
        (Method::POST, format!("{}/login", shop.url("auth"))),
        (Method::GET, format!("{}/session", shop.url("auth"))),
        (Method::GET, format!("{}/mailbox", shop.url("email"))),
    ];
    for (method, url) in direct {
        for secret in [None, Some("wrong secret")] {
            let mut request = shop
                .http
                .request(method.clone(), &url)
                .header("x-shop-user", "bo@example.com")
                .json(&credentials);
            if let Some(secret) = secret {
                request = request.header("x-shop-internal", secret);
            }
            let answer = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                answer.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {url} with {secret:?}"
            );
            let body: Value = answer.json().await.unwrap_or_default();
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("gateway")),
                "{body}"
            );
        }
    }
    // With the secret, as the gateway sends it, the same request is served.
    let answer = shop
        .http
        .post(format!("{}/login", shop.url("auth")))
        .header("x-shop-internal", SECRET)
        .json(&credentials)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.status(), StatusCode::OK);
}

#[tokio::test]
async fn accounts_sessions_and_mails_survive_a_restart_of_shop_up() {
    let mut shop = Stack::up().await;
    let credentials = json!({ "email": "gus@example.com", "password": "gus's password" });
    let (status, body) = register(&shop, credentials).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, session) = login(&shop, "gus@example.com", "gus's password").await;
    let token = token_of(&session);
    shop.mail_with_subject(&token, "Welcome").await;

    shop.restart_up().await;

    let mails = shop.mailbox(&token).await;
    assert_eq!(
        mails.len(),
        1,
        "the session and the mail are still there: {mails:?}"
    );
    let (status, body) = login(&shop, "gus@example.com", "gus's password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let again = json!({ "email": "gus@example.com", "password": "another password" });
    let (status, _) = register(&shop, again).await;
    assert_eq!(status, StatusCode::CONFLICT, "the account is still there");
}
