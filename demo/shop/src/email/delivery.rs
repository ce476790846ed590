//! Delivering a rendered mail: over SMTP (lettre) when a server is configured, otherwise
//! only into the outbox (the mailbox page). A failure is either permanent (a bad address,
//! a 5xx answer: trying again cannot help) or transient (the server is unreachable, a 4xx
//! answer: it may work on a later delivery).

use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Permanent(String),
    #[error("{0}")]
    Transient(String),
}

/// Where mails go.
pub enum Transport {
    /// Nowhere beyond the outbox.
    Outbox,
    /// To this SMTP server (plain SMTP on a trusted network, as a development relay is).
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Transport {
    /// SMTP to `host:port` when given, the outbox otherwise.
    pub fn new(smtp: Option<&str>) -> anyhow::Result<Self> {
        let Some(server) = smtp else {
            return Ok(Transport::Outbox);
        };
        let (host, port) = server
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .ok_or_else(|| anyhow::anyhow!("--smtp '{server}' is not HOST:PORT"))?;
        Ok(Transport::Smtp(
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(port)
                .timeout(Some(SMTP_TIMEOUT))
                .build(),
        ))
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Transport::Outbox => "the outbox only (no --smtp server)",
            Transport::Smtp(_) => "SMTP",
        }
    }

    /// Delivers one mail from `from`.
    pub async fn deliver(
        &self,
        from: &Mailbox,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<(), DeliveryError> {
        let address = Address::from_str(to.trim()).map_err(|error| {
            DeliveryError::Permanent(format!("'{to}' is not a deliverable address: {error}"))
        })?;
        let Transport::Smtp(smtp) = self else {
            return Ok(());
        };
        let message = Message::builder()
            .from(from.clone())
            .to(Mailbox::new(None, address))
            .subject(subject)
            .body(body.to_owned())
            .map_err(|error| {
                DeliveryError::Permanent(format!("the mail cannot be built: {error}"))
            })?;
        smtp.send(message).await.map(|_| ()).map_err(|error| {
            if error.is_permanent() {
                DeliveryError::Permanent(format!("the SMTP server refused the mail: {error}"))
            } else {
                DeliveryError::Transient(format!("the SMTP server is unreachable or busy: {error}"))
            }
        })
    }
}
