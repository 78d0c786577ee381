//! Launched sidecars: the runner starts each one with the Unix socket it
//! must listen on (`WEIR_SIDECAR_SOCKET`), puts its stdout and stderr in the
//! runner's log prefixed with the plugin name, waits until it answers the
//! handshake, restarts it with backoff when it dies, and on shutdown sends
//! SIGTERM, then SIGKILL after a grace period. A sidecar dies with its
//! runner even when the runner is killed outright (`PR_SET_PDEATHSIG`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::manifest::Launch;

/// How long a sidecar may take to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(5);

/// Starts the sidecar's process once; `Err` names what went wrong.
pub fn spawn(name: &str, launch: &Launch, socket: &Path) -> Result<Child, String> {
    let Launch::Command {
        command,
        args,
        env,
        working_dir,
    } = launch
    else {
        return Err("not a launched plugin".into());
    };
    let mut launcher = Command::new(command);
    let runner = nix::unistd::getpid();
    // SAFETY: runs in the child between fork and exec, and only makes two
    // async-signal-safe system calls (prctl and getppid).
    #[allow(unsafe_code)]
    unsafe {
        launcher.pre_exec(move || {
            // A runner killed with SIGKILL cannot stop its sidecars, and a
            // stock gRPC server (no SDK of ours watching its parent) would
            // outlive it: the kernel kills it instead. The signal follows
            // the thread that spawned it, a runtime thread that lives as
            // long as the runner.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The runner may have died before the line above.
            if nix::unistd::getppid() != runner {
                return Err(std::io::Error::other("the runner is gone"));
            }
            Ok(())
        });
    }
    let mut child = launcher
        .args(args)
        .envs(env)
        .env("WEIR_SIDECAR_SOCKET", socket)
        // The SDKs exit when their parent is no longer this process (the
        // runner was killed and cannot send SIGTERM).
        .env("WEIR_RUNNER_PID", std::process::id().to_string())
        .current_dir(working_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", command.display()))?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward_lines(
            name.to_owned(),
            BufReader::new(stdout),
            false,
        ));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_lines(name.to_owned(), BufReader::new(stderr), true));
    }
    Ok(child)
}

async fn forward_lines<R: tokio::io::AsyncRead + Unpin>(
    plugin: String,
    mut reader: BufReader<R>,
    stderr: bool,
) {
    // Bytes, not `lines()`: a line that is not UTF-8 must not end the
    // forwarding (a closed pipe would break the sidecar's next write).
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if stderr {
            tracing::warn!(target: "weir_runner::sidecar", %plugin, "{text}");
        } else {
            tracing::info!(target: "weir_runner::sidecar", %plugin, "{text}");
        }
    }
}

/// Asks the process to stop (SIGTERM), then kills it after the grace period.
pub async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Keeps a launched sidecar running: when the process exits, it is started
/// again with backoff (its tasks fail meanwhile and come back with a
/// restart). Stops it when `shutdown` fires.
pub async fn supervise(
    name: String,
    launch: Launch,
    socket: PathBuf,
    mut child: Child,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                stop(&mut child).await;
                let _ = std::fs::remove_file(&socket);
                return;
            }
            status = child.wait() => {
                tracing::error!(plugin = %name, ?status, ?backoff, "sidecar exited; restarting it");
            }
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
            let _ = std::fs::remove_file(&socket);
            match spawn(&name, &launch, &socket) {
                Ok(restarted) => {
                    child = restarted;
                    crate::metrics::count_sidecar_restart(&name);
                    tracing::info!(plugin = %name, "sidecar restarted");
                    break;
                }
                Err(error) => tracing::error!(plugin = %name, %error, "sidecar restart failed"),
            }
        }
    }
}
