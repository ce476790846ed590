//! The authorization service's HTTP handlers.

use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Auth, passwords, store};
use crate::common::contracts::{EmailKind, EmailRequest};
use crate::common::error::{ApiError, ApiResult};
use crate::common::time::now_ms;

const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
}

#[derive(Debug, Deserialize)]
pub struct Recovery {
    email: String,
}

#[derive(Debug, Deserialize)]
pub struct Reset {
    token: String,
    password: String,
}

/// The request's JSON body, or 400 saying what is wrong with it.
fn body<T>(payload: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    payload
        .map(|Json(value)| value)
        .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
}

/// Addresses are compared as written, but without surrounding space or capitals.
fn normalized_email(email: &str) -> ApiResult<String> {
    let email = email.trim().to_lowercase();
    lettre::Address::from_str(&email)
        .map_err(|_| ApiError::bad_request(format!("'{email}' is not an email address")))?;
    Ok(email)
}

fn checked_password(password: &str) -> ApiResult<&str> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::bad_request(format!(
            "the password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(password)
}

fn hashing_failed(error: passwords::HashError) -> ApiError {
    tracing::error!(%error, "argon2");
    ApiError::internal("the password could not be processed")
}

/// The session token of `Authorization: Bearer <token>`, or 401.
fn bearer(headers: &HeaderMap) -> ApiResult<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("sign in first: no session token (Authorization: Bearer)")
        })
}

pub async fn register(
    State(auth): State<Arc<Auth>>,
    payload: Result<Json<Credentials>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let credentials = body(payload)?;
    let email = normalized_email(&credentials.email)?;
    let password = checked_password(&credentials.password)?;
    let hash = passwords::hash(password).map_err(hashing_failed)?;
    let welcome = EmailRequest {
        to: email.clone(),
        subject: "Welcome to the shop".into(),
        body: format!(
            "Hello,\n\nyour account {email} is ready. Log in to place and follow your orders.\n"
        ),
        kind: EmailKind::Welcome,
        order_id: None,
    };
    if !store::insert_user(&auth.db, &email, &hash, &welcome).await? {
        return Err(ApiError::conflict(format!("{email} is already registered")));
    }
    auth.mail_queued.notify_one();
    Ok((StatusCode::CREATED, Json(json!({ "email": email }))))
}

pub async fn login(
    State(auth): State<Arc<Auth>>,
    payload: Result<Json<Credentials>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let credentials = body(payload)?;
    let email = credentials.email.trim().to_lowercase();
    let refused = || ApiError::unauthorized("wrong email or password");
    let stored = store::password_hash(&auth.db.pool, &email)
        .await?
        .ok_or_else(refused)?;
    if !passwords::verify(&credentials.password, &stored).map_err(hashing_failed)? {
        return Err(refused());
    }
    let token = passwords::new_token();
    store::insert_session(&auth.db.pool, &passwords::token_digest(&token), &email).await?;
    Ok(Json(json!({ "token": token, "email": email })))
}

pub async fn logout(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> ApiResult<StatusCode> {
    let token = bearer(&headers)?;
    if !store::revoke_session(&auth.db.pool, &passwords::token_digest(token)).await? {
        return Err(ApiError::unauthorized(
            "the session is not valid (signed out already?)",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn session(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let token = bearer(&headers)?;
    let email = store::session_email(&auth.db.pool, &passwords::token_digest(token))
        .await?
        .ok_or_else(|| ApiError::unauthorized("the session is not valid: sign in again"))?;
    Ok(Json(json!({ "email": email })))
}

/// Always 202, whether or not the address has an account, so the answer does not tell
/// who is registered; the mail goes only to an existing account.
pub async fn recover(
    State(auth): State<Arc<Auth>>,
    payload: Result<Json<Recovery>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let email = normalized_email(&body(payload)?.email)?;
    if store::password_hash(&auth.db.pool, &email).await?.is_none() {
        return Ok(StatusCode::ACCEPTED);
    }
    let token = passwords::new_token();
    let lifetime = auth.reset_token_lifetime;
    let expires_at =
        now_ms().saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX));
    let minutes = lifetime.as_secs().div_ceil(60);
    let mail = EmailRequest {
        to: email.clone(),
        subject: "Reset your password".into(),
        body: format!(
            "Hello,\n\nsomeone asked to reset the password of {email}.\n\
             Reset token: {token}\n\nEnter it on the sign-in page within {minutes} minutes. \
             If it was not you, ignore this mail.\n"
        ),
        kind: EmailKind::PasswordReset,
        order_id: None,
    };
    store::insert_reset_token(
        &auth.db,
        &passwords::token_digest(&token),
        &email,
        expires_at,
        &mail,
    )
    .await?;
    auth.mail_queued.notify_one();
    Ok(StatusCode::ACCEPTED)
}

pub async fn reset(
    State(auth): State<Arc<Auth>>,
    payload: Result<Json<Reset>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let reset = body(payload)?;
    let password = checked_password(&reset.password)?;
    let hash = passwords::hash(password).map_err(hashing_failed)?;
    let digest = passwords::token_digest(reset.token.trim());
    match store::reset_password(&auth.db.pool, &digest, &hash).await? {
        Some(email) => {
            tracing::info!(%email, "password reset; the account's sessions are revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::bad_request(
            "the reset token is unknown, used or expired: ask for a new one",
        )),
    }
}
