//! The console API ([`busbar_http::console_api::Console`]) on whichever broker is serving:
//! tokens judged and minted with the broker's SAS policies, pages of messages read
//! without changing anything (`browse.rs`), and the repair actions (`actions.rs`, purge
//! jobs in `purge.rs`) and the rule tester (`rule_test.rs`), each change journaled like the broker's other changes and answered once
//! durable, and the history of counts (`history.rs`).

mod actions;
mod browse;
mod history;
mod message_json;
mod purge;
mod rule_test;

use std::sync::Arc;

use busbar_atom::timestamp::format_utc;
use busbar_http::Access;
use busbar_http::console_api::{
    BrowseQuery, CancelOutcome, CancelRequest, Console, ConsoleError, DeleteOutcome, DeleteRequest,
    JobStarted, JobStatus, MessagePage, Pending, PurgeRequest, ResubmitOutcome, ResubmitRequest,
    RuleTestOutcome, RuleTestRequest, SendOutcome, SendRequest, Token,
};
use busbar_http::rest::Failure;
use busbar_servicebus::authorization::Action;
use busbar_servicebus::sas;

use crate::broker::Entity;
use crate::{Current, ServedBroker};

/// How long a token minted for the page lasts.
const TOKEN_LIFETIME_SECS: u64 = 3600;
/// The audience of minted tokens: the whole namespace.
const NAMESPACE_AUDIENCE: &str = "sb://busbar/";

const REOPENING: &str = "The broker is reopening its store; try again shortly.";

/// The console over the broker serving at the moment.
pub(crate) struct BrokerConsole {
    current: Arc<Current>,
    jobs: purge::Jobs,
    history: Arc<history::Sampler>,
}

impl BrokerConsole {
    /// The console over `current`; its history sampler runs (on the tokio runtime this
    /// is called on) for as long as `current` lives.
    pub(crate) fn new(current: Arc<Current>) -> Self {
        let history = Arc::new(history::Sampler::default());
        tokio::spawn(history::run(Arc::clone(&history), Arc::downgrade(&current)));
        BrokerConsole {
            current,
            jobs: purge::Jobs::default(),
            history,
        }
    }

    fn broker(&self) -> Result<Arc<ServedBroker>, ConsoleError> {
        self.current
            .broker()
            .ok_or_else(|| ConsoleError::Unavailable(REOPENING.to_owned()))
    }

    /// A token for the namespace signed with `key` under `key_name`, once the broker's own
    /// validation accepts it.
    fn token(broker: &ServedBroker, key_name: &str, key: &str) -> Result<Token, String> {
        let now = broker.now_unix_secs();
        let expiry = now + TOKEN_LIFETIME_SECS;
        let token = sas::generate_token(NAMESPACE_AUDIENCE, key_name, key, expiry);
        sas::validate(&token, &broker.settings.policies, now, 0).map_err(|e| e.to_string())?;
        Ok(Token {
            token,
            expires_at: format_utc(i64::try_from(expiry * 1000).unwrap_or(i64::MAX)),
        })
    }
}

/// The queue or subscription at `path`, or 404.
fn queue_entity(broker: &ServedBroker, path: &str) -> Result<Arc<Entity>, ConsoleError> {
    broker
        .entity(path)
        .ok_or_else(|| ConsoleError::NotFound(format!("no queue or subscription named '{path}'")))
}

/// A REST-path failure in the console's terms.
fn console_failure(failure: Failure) -> ConsoleError {
    match failure {
        Failure::BadRequest(why) | Failure::Forbidden(why) => ConsoleError::BadRequest(why),
        Failure::Unauthorized(why) => ConsoleError::BadRequest(why),
        Failure::LockNotFound(why) => ConsoleError::Conflict(why),
        Failure::EntityNotFound(why) => ConsoleError::NotFound(why),
        Failure::Busy(why) => ConsoleError::Unavailable(why),
        Failure::Internal(why) => ConsoleError::Internal(why),
    }
}

impl Console for BrokerConsole {
    fn authorize(
        &self,
        authorization: Option<&str>,
        path: &str,
        access: Access,
    ) -> Result<(), String> {
        let broker = self.broker().map_err(|e| e.to_string())?;
        let action = match access {
            Access::Read => Action::AdminRead,
            Access::Write => Action::AdminWrite,
        };
        broker.authorize_http(authorization, path, action)
    }

    fn unavailable(&self) -> Option<String> {
        busbar_http::Admin::unavailable(&*self.current)
    }

    fn mint_token(&self, key_name: &str, key: &str) -> Result<Token, String> {
        let broker = self.broker().map_err(|e| e.to_string())?;
        Self::token(&broker, key_name, key)
    }

    fn development_token(&self) -> Option<Token> {
        let broker = self.broker().ok()?;
        if !broker.settings.open_http {
            return None;
        }
        let policy = broker
            .settings
            .policies
            .iter()
            .find(|policy| policy.rights.manage)?;
        Self::token(&broker, &policy.name, &policy.key).ok()
    }

    fn messages(&self, query: &BrowseQuery) -> Result<MessagePage, ConsoleError> {
        browse::page(&*self.broker()?, query)
    }

    fn send(&self, request: SendRequest) -> Pending<SendOutcome> {
        let broker = self.broker();
        Box::pin(async move { actions::send(&*broker?, request).await })
    }

    fn resubmit(&self, request: ResubmitRequest) -> Pending<ResubmitOutcome> {
        let broker = self.broker();
        Box::pin(async move { actions::resubmit(&*broker?, request).await })
    }

    fn delete(&self, request: DeleteRequest) -> Pending<DeleteOutcome> {
        let broker = self.broker();
        Box::pin(async move { actions::delete(&*broker?, request).await })
    }

    fn purge(&self, request: PurgeRequest) -> Result<JobStarted, ConsoleError> {
        self.jobs.start(self.broker()?, request)
    }

    fn job(&self, id: &str) -> Option<JobStatus> {
        self.jobs.status(id)
    }

    fn cancel_scheduled(&self, request: CancelRequest) -> Pending<CancelOutcome> {
        let broker = self.broker();
        Box::pin(async move { actions::cancel_scheduled(&*broker?, request).await })
    }

    fn history(&self) -> busbar_http::console_api::History {
        self.history.history()
    }

    fn management(&self) -> Arc<dyn busbar_http::atom::Management> {
        Arc::clone(&self.current) as _
    }

    fn rule_test(&self, request: RuleTestRequest) -> Result<RuleTestOutcome, ConsoleError> {
        rule_test::rule_test(&*self.broker()?, &request)
    }
}
