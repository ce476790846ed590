//! The Service Bus administration API (Atom/XML over HTTP), the one
//! `ServiceBusAdministrationClient` speaks in every SDK: create, read, update, delete and
//! list queues, topics, subscriptions and rules, their runtime counts, and the namespace.
//! The wire facts it follows are in the reference's servicebus-admin-api.md.
//!
//! It shares the HTTP root with the broker's other routes: a request carrying
//! `api-version` in its query (every SDK request does, no other route takes it) is an
//! administration request, so a queue named `health` or `api` is still reachable here.
//!
//! Layout: [`path`] names the resource, [`validate`] applies the service's checks,
//! [`handler`] does the request through the [`Management`] trait the broker implements.
//! The documents themselves (the description model, reading bodies, writing entries and
//! feeds) are busbar-atom's, shared with the SDK's administration client; they are
//! re-exported here under their old names.

mod handler;
mod management;
pub mod path;
mod validate;

pub use busbar_atom::{duration, model, read, timestamp, write};

use std::sync::Arc;

use axum::Router;

pub use busbar_atom::model::*;
pub use handler::{AtomError, Stored, is_atom_request, put_checked};
use handler::{AtomState, handle};
pub use management::*;

use crate::Admin;

/// Adds the administration API in front of `router`: requests with `api-version` go to
/// it, the rest to `router`'s own routes. Call it on the finished router: routes merged in
/// afterwards (and their fallback, which takes over unmatched paths) are not behind it.
pub fn with_management(
    router: Router,
    admin: Arc<dyn Admin>,
    management: Arc<dyn Management>,
) -> Router {
    let state = AtomState { admin, management };
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let state = state.clone();
            async move {
                if is_atom_request(request.uri().query()) {
                    handle(state, request).await
                } else {
                    next.run(request).await
                }
            }
        },
    ))
}
