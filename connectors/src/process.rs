//! What every Weir binary does as a process: wait for the signal to stop.

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// Ctrl-C (SIGINT).
    Interrupt,
    /// SIGTERM, what process managers send.
    Terminate,
}

/// Waits until the process is asked to stop, by SIGTERM or Ctrl-C. When
/// SIGTERM cannot be listened for, only Ctrl-C stops it.
pub async fn stop_signal() -> StopSignal {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => StopSignal::Interrupt,
        () = terminate => StopSignal::Terminate,
    }
}
