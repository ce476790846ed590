//! Service Bus connection strings: `Key=Value` pairs separated by `;`, as the portal and
//! the emulator give them.

use super::error::{ServiceBusError, ServiceBusResult};

/// The port of AMQP over TLS (Azure Service Bus).
pub const AMQPS_PORT: u16 = 5671;
/// The port of plain AMQP (the emulator and Busbar) when the endpoint names none.
pub const AMQP_PORT: u16 = 5672;

/// A parsed connection string.
///
/// ```
/// use busbar_client::ConnectionString;
///
/// let cs = ConnectionString::parse(
///     "Endpoint=sb://localhost:5673;SharedAccessKeyName=RootManageSharedAccessKey;\
///      SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
/// )?;
/// assert_eq!(cs.host, "localhost");
/// assert_eq!(cs.port(), 5673);
/// assert!(cs.use_development_emulator);
/// # Ok::<(), busbar_client::ServiceBusError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// `Endpoint` as written, e.g. `sb://contoso.servicebus.windows.net/`.
    pub endpoint: String,
    /// The endpoint's host.
    pub host: String,
    /// The endpoint's port, when it names one.
    pub endpoint_port: Option<u16>,
    /// The name of the shared access policy the key belongs to.
    pub shared_access_key_name: Option<String>,
    /// The policy's key, which signs the tokens.
    pub shared_access_key: Option<String>,
    /// A ready-made token (`SharedAccessSignature sr=...`), used instead of a key.
    pub shared_access_signature: Option<String>,
    /// The queue or topic the connection string is scoped to, if any.
    pub entity_path: Option<String>,
    /// `UseDevelopmentEmulator=true`: plain AMQP (no TLS) on the endpoint's port.
    pub use_development_emulator: bool,
}

impl std::fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys and tokens stay out of logs.
        f.debug_struct("ConnectionString")
            .field("endpoint", &self.endpoint)
            .field("shared_access_key_name", &self.shared_access_key_name)
            .field("entity_path", &self.entity_path)
            .field("use_development_emulator", &self.use_development_emulator)
            .finish_non_exhaustive()
    }
}

impl ConnectionString {
    /// Parses `text`; keys are case-insensitive, unknown keys are ignored.
    pub fn parse(text: &str) -> ServiceBusResult<ConnectionString> {
        let mut endpoint = None;
        let mut cs = ConnectionString {
            endpoint: String::new(),
            host: String::new(),
            endpoint_port: None,
            shared_access_key_name: None,
            shared_access_key: None,
            shared_access_signature: None,
            entity_path: None,
            use_development_emulator: false,
        };
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(ServiceBusError::invalid(format!(
                    "connection string part {part:?} is not Key=Value"
                )));
            };
            let value = value.trim().to_owned();
            match key.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value),
                "sharedaccesskeyname" => cs.shared_access_key_name = Some(value),
                "sharedaccesskey" => cs.shared_access_key = Some(value),
                "sharedaccesssignature" => cs.shared_access_signature = Some(value),
                "entitypath" => cs.entity_path = Some(value),
                "usedevelopmentemulator" => {
                    cs.use_development_emulator = value.eq_ignore_ascii_case("true");
                }
                _ => {}
            }
        }
        let Some(endpoint) = endpoint else {
            return Err(ServiceBusError::invalid(
                "the connection string has no Endpoint",
            ));
        };
        let (host, port) = split_endpoint(&endpoint)?;
        cs.endpoint = endpoint;
        cs.host = host;
        cs.endpoint_port = port;
        if cs.shared_access_signature.is_none()
            && (cs.shared_access_key_name.is_none() || cs.shared_access_key.is_none())
        {
            return Err(ServiceBusError::invalid(
                "the connection string needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature",
            ));
        }
        Ok(cs)
    }

    /// The port to connect to: the endpoint's, else 5672 for the emulator and 5671 (TLS)
    /// for Service Bus.
    pub fn port(&self) -> u16 {
        self.endpoint_port
            .unwrap_or(if self.use_development_emulator {
                AMQP_PORT
            } else {
                AMQPS_PORT
            })
    }

    /// `host[:port]` as the SDKs put it in token audiences: the port only when the
    /// endpoint names one.
    pub fn fully_qualified_namespace(&self) -> String {
        match self.endpoint_port {
            Some(port) => format!("{}:{port}", bracketed(&self.host)),
            None => self.host.clone(),
        }
    }

    /// `host:port` to open the socket to.
    pub fn socket_address(&self) -> String {
        format!("{}:{}", bracketed(&self.host), self.port())
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Host and optional port of an endpoint such as `sb://host:port/`.
pub(crate) fn split_endpoint(endpoint: &str) -> ServiceBusResult<(String, Option<u16>)> {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let bad = || ServiceBusError::invalid(format!("endpoint {endpoint:?} has no valid host"));
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(port) => Some(port.parse::<u16>().map_err(|_| {
            ServiceBusError::invalid(format!("endpoint {endpoint:?} has an invalid port"))
        })?),
        None => None,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn azure_connection_string_uses_tls_port() {
        let cs = ConnectionString::parse(
            "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=abc=;EntityPath=q1",
        )
        .unwrap();
        assert_eq!(cs.host, "contoso.servicebus.windows.net");
        assert_eq!(cs.port(), 5671);
        assert_eq!(cs.shared_access_key.as_deref(), Some("abc="));
        assert_eq!(cs.entity_path.as_deref(), Some("q1"));
        assert_eq!(
            cs.fully_qualified_namespace(),
            "contoso.servicebus.windows.net"
        );
        assert!(!cs.use_development_emulator);
    }

    #[test]
    fn emulator_keeps_the_port_and_defaults_to_5672() {
        let cs = ConnectionString::parse(
            "endpoint=sb://127.0.0.1:5673;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=TRUE;",
        )
        .unwrap();
        assert_eq!(cs.socket_address(), "127.0.0.1:5673");
        assert_eq!(cs.fully_qualified_namespace(), "127.0.0.1:5673");
        let cs = ConnectionString::parse(
            "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
        )
        .unwrap();
        assert_eq!(cs.port(), 5672);
        let cs = ConnectionString::parse(
            "Endpoint=sb://[::1]:7000/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y&se=1&skn=k",
        )
        .unwrap();
        assert_eq!(cs.host, "::1");
        assert_eq!(cs.socket_address(), "[::1]:7000");
    }

    #[test]
    fn refuses_what_cannot_connect() {
        for bad in [
            "SharedAccessKeyName=k;SharedAccessKey=v",
            "Endpoint=sb://h;SharedAccessKeyName=k",
            "Endpoint=sb://h:port;SharedAccessKeyName=k;SharedAccessKey=v",
            "Endpoint=sb://;SharedAccessKeyName=k;SharedAccessKey=v",
            "Endpoint",
        ] {
            assert!(ConnectionString::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let cs =
            ConnectionString::parse("Endpoint=sb://h;SharedAccessKeyName=k;SharedAccessKey=secret")
                .unwrap();
        assert!(!format!("{cs:?}").contains("secret"));
    }
}
