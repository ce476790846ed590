//! The process signals that ask a broker (or a service beside it) to stop.

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    CtrlC,
    Terminate,
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM, saying which. A signal that can't be
/// listened for is logged and never completes.
pub async fn stop_signal() -> StopSignal {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => StopSignal::CtrlC,
        () = terminate => StopSignal::Terminate,
    }
}
