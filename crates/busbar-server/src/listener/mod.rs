//! The broker's front doors. Every listener (AMQP, AMQPS, HTTP) accepts here and finds out
//! what each connection speaks from its first bytes ([`detect`]): TLS is unwrapped with the
//! server's certificate ([`certificates`]; without one configured, the development CA's,
//! [`dev_ca`]) and looked into again; then AMQP goes to the broker's accept loop as a
//! [`Handoff`], HTTP/1.1 to the HTTP router (`busbar_http::serve_connection`). Where only TLS
//! is allowed, plaintext is answered in its own protocol's terms with why, and closed.
//!
//! A connection still being recognised counts toward no broker limit, so it is bounded
//! here instead: it has [`DETECTION_TIMEOUT`] to get through TLS and say what it speaks, and
//! at most [`MAX_DETECTING`] are recognised at once (more wait in the kernel's backlog).

pub mod certificates;
mod detect;
pub mod dev_ca;
mod greedy;
mod prefixed;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::connection::{self, ClientStream, Handoff};
use certificates::{CertStore, CertificateFiles};
use detect::Protocol;
use greedy::Greedy;
use prefixed::Prefixed;

/// How long a new connection has to finish its TLS handshake (if any) and send the first
/// bytes of its protocol.
pub const DETECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections being recognised at once, over all listeners.
pub const MAX_DETECTING: usize = 1024;
/// How long shutdown lets HTTP requests in flight finish.
const HTTP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: {1}")]
    File(String, std::io::Error),
    #[error("certificate file {0}: {1}")]
    Certificate(String, String),
    #[error("key file {0}: {1}")]
    Key(String, String),
    #[error("cannot generate the development certificates: {0}")]
    Generate(String),
    #[error("TLS setup: {0}")]
    Setup(String),
}

impl TlsError {
    fn file(path: &Path, error: std::io::Error) -> TlsError {
        TlsError::File(path.display().to_string(), error)
    }

    fn generate(error: rcgen::Error) -> TlsError {
        TlsError::Generate(error.to_string())
    }
}

/// The server side of TLS: the certificate in use and the acceptor presenting it.
pub struct Tls {
    store: Arc<CertStore>,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// TLS with the certificate in `files`, or else with the development CA's (made in
    /// `data_dir` if absent).
    pub fn open(files: Option<CertificateFiles>, data_dir: &Path) -> Result<Tls, TlsError> {
        let files = match files {
            Some(files) => files,
            None => {
                let dev = dev_ca::ensure(data_dir)?;
                tracing::info!(
                    ca = %dev.ca.display(),
                    "TLS uses the development CA: trust this file (or the output of `busbar dev-cert`) in clients"
                );
                CertificateFiles {
                    cert: dev.cert,
                    key: dev.key,
                }
            }
        };
        let provider = Arc::new(crypto_provider());
        let store = Arc::new(CertStore::open(files, Arc::clone(&provider))?);
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&store) as _);
        Ok(Tls {
            store,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the certificate files again for the connections to come; on failure keeps
    /// the certificate in use, and logs why.
    pub fn reload(&self) {
        let cert = self.store.files().cert.display().to_string();
        match self.store.reload() {
            Ok(()) => tracing::info!(%cert, "TLS certificate reloaded"),
            Err(error) => {
                tracing::error!(%error, "TLS certificate reload failed; keeping the one in use");
            }
        }
    }

    /// Reloads the certificate on every SIGHUP, until `stop` says so.
    pub fn reload_on_hangup(self: &Arc<Self>, mut stop: watch::Receiver<bool>) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hangups = match signal(SignalKind::hangup()) {
                Ok(hangups) => hangups,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGHUP: no certificate reloads");
                    return;
                }
            };
            let tls = Arc::clone(self);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        Some(()) = hangups.recv() => tls.reload(),
                        () = stopped(&mut stop) => return,
                    }
                }
            });
        }
        #[cfg(not(unix))]
        let _ = stop;
    }
}

/// rustls on *ring*: a much smaller build than aws-lc (no C library of its own to compile),
/// at the price of no post-quantum key exchange, which rustls marks by deprecating it.
#[allow(deprecated)]
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// What a listener does with connections that aren't encrypted.
#[derive(Debug, Clone)]
pub enum Plaintext {
    Served,
    /// Answered with this reason and closed.
    Refused(String),
}

impl Plaintext {
    /// Plaintext on a loopback address is served; elsewhere it is refused (SAS tokens are
    /// bearer secrets) unless `allowed` says the operator wants it anyway.
    pub fn on(address: SocketAddr, allowed: bool) -> Plaintext {
        if allowed || address.ip().is_loopback() {
            return Plaintext::Served;
        }
        Plaintext::Refused(format!(
            "Busbar serves only TLS on {address}, which is not a loopback address: SAS tokens \
             are bearer secrets. Connect with TLS (amqps://, https://), or start the broker \
             with --allow-plaintext."
        ))
    }

    /// Refused, on a listener that serves TLS only.
    pub fn tls_only(address: SocketAddr) -> Plaintext {
        Plaintext::Refused(format!(
            "{address} serves only TLS: connect with TLS (amqps://, https://), or to the \
             broker's plain AMQP port."
        ))
    }
}

/// What the listeners share: where AMQP and HTTP connections go, TLS, and the bound on
/// connections being recognised.
pub struct FrontDoor {
    router: busbar_http::Router,
    tls: TlsAcceptor,
    handoff: mpsc::Sender<Handoff>,
    detecting: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

/// One connection, recognised.
struct Recognised {
    stream: Box<dyn ClientStream>,
    read_ahead: BytesMut,
    speaks: Speaks,
    encrypted: bool,
}

/// What a connection speaks once TLS is off it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaks {
    Amqp,
    Http,
}

impl FrontDoor {
    /// Listeners opened on it serve until `stop` turns true.
    pub fn new(
        router: busbar_http::Router,
        tls: &Tls,
        handoff: mpsc::Sender<Handoff>,
        stop: watch::Receiver<bool>,
    ) -> Arc<FrontDoor> {
        Arc::new(FrontDoor {
            router,
            tls: tls.acceptor.clone(),
            handoff,
            detecting: Arc::new(Semaphore::new(MAX_DETECTING)),
            stop,
        })
    }

    /// Serves `listener` (named `name` in logs) until stopped; then lets HTTP requests in
    /// flight finish, for a while.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        name: &'static str,
        plaintext: Plaintext,
    ) {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, tls_only = matches!(plaintext, Plaintext::Refused(_)), "{name} listener started");
        }
        let plaintext = Arc::new(plaintext);
        let mut stop = self.stop.clone();
        let mut connections = JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&self.detecting).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = stopped(&mut stop) => break,
            };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let door = Arc::clone(&self);
                        connections.spawn(door.welcome(stream, peer, Arc::clone(&plaintext), permit));
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = stopped(&mut stop) => break,
            }
        }
        drop(listener);
        let drained = tokio::time::timeout(HTTP_GRACE, async {
            while connections.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            connections.abort_all();
        }
    }

    async fn welcome(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        plaintext: Arc<Plaintext>,
        permit: OwnedSemaphorePermit,
    ) {
        let recognised = match tokio::time::timeout(DETECTION_TIMEOUT, self.recognise(stream)).await
        {
            Ok(Ok(recognised)) => recognised,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "connection dropped before it said what it speaks");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "connection dropped: nothing recognisable within the detection timeout");
                return;
            }
        };
        let refusal = match &*plaintext {
            Plaintext::Refused(reason) if !recognised.encrypted => Some(reason.clone()),
            _ => None,
        };
        match (recognised.speaks, refusal) {
            (Speaks::Amqp, None) => {
                let handoff = Handoff {
                    stream: recognised.stream,
                    read_ahead: recognised.read_ahead,
                    peer: peer.to_string(),
                };
                // Waits while the broker reopens its store, holding the permit: new
                // connections then wait in the backlog rather than here.
                if self.handoff.send(handoff).await.is_err() {
                    tracing::debug!("connection dropped: the broker is stopping");
                }
            }
            (Speaks::Amqp, Some(reason)) => {
                tracing::info!(%peer, "plain AMQP refused: TLS required on this listener");
                let condition = busbar_servicebus::conditions::NOT_ALLOWED;
                connection::refuse(
                    recognised.stream,
                    recognised.read_ahead,
                    condition,
                    reason,
                    &peer.to_string(),
                )
                .await;
            }
            (Speaks::Http, refusal) => {
                drop(permit);
                let router = match refusal {
                    None => self.router.clone(),
                    Some(reason) => {
                        tracing::info!(%peer, "plain HTTP refused: TLS required on this listener");
                        busbar_http::refusal_router(reason)
                    }
                };
                let router = if recognised.encrypted {
                    busbar_http::over_tls(router)
                } else {
                    router
                };
                let mut stop = self.stop.clone();
                let stream = Prefixed::new(recognised.read_ahead, recognised.stream);
                busbar_http::serve_connection(stream, peer, router, async move {
                    stopped(&mut stop).await;
                })
                .await;
            }
        }
    }

    /// What `stream` speaks, with TLS taken off.
    async fn recognise(&self, mut stream: TcpStream) -> std::io::Result<Recognised> {
        let mut read_ahead = BytesMut::with_capacity(512);
        let speaks = match detect::read_protocol(&mut stream, &mut read_ahead).await? {
            Protocol::Amqp => Speaks::Amqp,
            Protocol::Http => Speaks::Http,
            Protocol::Tls => {
                let mut tls = self.tls.accept(Prefixed::new(read_ahead, stream)).await?;
                let mut read_ahead = BytesMut::with_capacity(512);
                let speaks = match detect::read_protocol(&mut tls, &mut read_ahead).await? {
                    Protocol::Amqp => Speaks::Amqp,
                    Protocol::Http => Speaks::Http,
                    Protocol::Tls => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "TLS inside TLS",
                        ));
                    }
                };
                return Ok(Recognised {
                    stream: Box::new(Greedy::new(tls)),
                    read_ahead,
                    speaks,
                    encrypted: true,
                });
            }
        };
        Ok(Recognised {
            stream: Box::new(stream),
            read_ahead,
            speaks,
            encrypted: false,
        })
    }
}
