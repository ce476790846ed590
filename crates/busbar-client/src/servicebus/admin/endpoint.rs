//! Where the administration client goes and how it signs: read from a connection string.
//! A stand-in until the SDK's `ConnectionString` lands.

use super::error::{ErrorKind, Result, ServiceBusError};

/// How requests are signed.
#[derive(Debug, Clone)]
pub(super) enum Credential {
    /// A key: the client signs a token for each hour.
    Key { name: String, key: String },
    /// A ready token (`SharedAccessSignature sr=…`), sent as it is.
    Token(String),
}

/// A connection string's parts the administration client needs.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    pub host: String,
    pub port: Option<u16>,
    /// `host[:port]` as written.
    pub authority: String,
    pub credential: Credential,
    pub development_emulator: bool,
}

fn invalid(message: impl Into<String>) -> ServiceBusError {
    ServiceBusError::new(ErrorKind::InvalidArgument, message)
}

impl Endpoint {
    /// Reads `Endpoint=sb://host[:port]/;SharedAccessKeyName=…;SharedAccessKey=…` (or
    /// `SharedAccessSignature=…`), with `UseDevelopmentEmulator=true` for a local broker.
    pub fn parse(connection_string: &str) -> Result<Self> {
        let mut endpoint = None;
        let (mut key_name, mut key, mut token) = (None, None, None);
        let mut development_emulator = false;
        for part in connection_string
            .split(';')
            .filter(|p| !p.trim().is_empty())
        {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                invalid(format!(
                    "'{part}' in the connection string is not Name=Value"
                ))
            })?;
            let value = value.trim().to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value),
                "sharedaccesskeyname" => key_name = Some(value),
                "sharedaccesskey" => key = Some(value),
                "sharedaccesssignature" => token = Some(value),
                "usedevelopmentemulator" => {
                    development_emulator = value.eq_ignore_ascii_case("true")
                }
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or_else(|| invalid("the connection string has no Endpoint"))?;
        let authority = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, rest)| rest)
            .trim_end_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host.to_owned(),
                Some(
                    port.parse()
                        .map_err(|_| invalid(format!("'{port}' in the Endpoint is not a port")))?,
                ),
            ),
            None => (authority.clone(), None),
        };
        if host.is_empty() {
            return Err(invalid(format!("the Endpoint '{endpoint}' names no host")));
        }
        let credential = match (key_name, key, token) {
            (_, _, Some(token)) => Credential::Token(token),
            (Some(name), Some(key), None) => Credential::Key { name, key },
            _ => {
                return Err(invalid(
                    "the connection string needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature",
                ));
            }
        };
        Ok(Endpoint {
            host,
            port,
            authority,
            credential,
            development_emulator,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parts_whatever_their_case_and_order() {
        let e = Endpoint::parse(
            "endpoint=sb://localhost:5300/;UseDevelopmentEmulator=TRUE;SharedAccessKey=k=;SharedAccessKeyName=Root",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((e.host.as_str(), e.port), ("localhost", Some(5300)));
        assert_eq!(e.authority, "localhost:5300");
        assert!(e.development_emulator);
        assert!(
            matches!(e.credential, Credential::Key { ref name, ref key } if name == "Root" && key == "k=")
        );
        let e = Endpoint::parse("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (e.host.as_str(), e.port),
            ("ns.servicebus.windows.net", None)
        );
        assert!(!e.development_emulator);
        assert!(
            matches!(e.credential, Credential::Token(ref t) if t == "SharedAccessSignature sr=x&sig=y")
        );
        for bad in [
            "",
            "Endpoint=sb://h/",
            "SharedAccessKeyName=a;SharedAccessKey=b",
            "Endpoint=sb://h:x/;SharedAccessKeyName=a;SharedAccessKey=b",
            "nonsense",
        ] {
            assert_eq!(
                Endpoint::parse(bad).map(|_| ()).map_err(|e| e.kind()),
                Err(ErrorKind::InvalidArgument),
                "{bad}"
            );
        }
    }
}
