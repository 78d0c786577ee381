//! The `host` boundary: where connector code runs. Built-in plugins run in
//! this process; sidecar plugins, found through `plugin.path` manifests, run
//! in their own processes and are called over connector protocol v2
//! ([`remote`]). Launched sidecars are supervised ([`supervisor`]).

pub mod liveness;
pub mod manifest;
pub mod remote;
pub mod supervisor;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weir_connect::api::ConnectorPlugin;

use manifest::{Launch, Manifest};
use remote::{ChannelTarget, SidecarPlugin};

/// How long a sidecar may take to answer its first handshake.
const READY_DEADLINE: Duration = Duration::from_secs(15);

/// The sidecar plugins of a `plugin.path`, and what could not be loaded.
pub struct Loaded {
    pub plugins: Vec<Arc<dyn ConnectorPlugin>>,
    /// One message per plugin that failed, naming it. They are not fatal:
    /// the runner goes on with the others.
    pub errors: Vec<String>,
    /// The supervisors of launched sidecars; each ends once its sidecar
    /// has stopped after `shutdown`.
    pub supervisors: tokio::task::JoinSet<()>,
}

impl Loaded {
    /// Waits until every launched sidecar has stopped (call after `shutdown`).
    pub async fn stopped(mut self) {
        while self.supervisors.join_next().await.is_some() {}
    }
}

/// The sidecars one process launched or attached to, for its lifetime.
pub struct Sidecars {
    shutdown: CancellationToken,
    loaded: Option<Loaded>,
    runtime_dir: std::path::PathBuf,
}

impl Sidecars {
    /// The built-in plugins plus the sidecar plugins of the worker's
    /// `plugin.path`, if set. A plugin that cannot be loaded is logged and
    /// skipped; a class claimed twice is an error naming both.
    pub async fn load(
        worker: &weir_connect::config::ConfigMap,
        runtime_dir: std::path::PathBuf,
        runner_id: &str,
    ) -> Result<(weir_connect::registry::Registry, Sidecars), String> {
        let mut sidecars = Sidecars {
            shutdown: CancellationToken::new(),
            loaded: None,
            runtime_dir,
        };
        let mut registry = weir_connect::registry::Registry::builtin();
        if let Some(path) = worker.get("plugin.path").filter(|p| !p.trim().is_empty()) {
            let mut loaded = load(path, &sidecars.runtime_dir, runner_id, &sidecars.shutdown).await;
            registry = registry.with_plugins(std::mem::take(&mut loaded.plugins))?;
            sidecars.loaded = Some(loaded);
        }
        Ok((registry, sidecars))
    }

    /// Stops the launched sidecars (SIGTERM, then SIGKILL after a grace
    /// period) and removes their sockets. Call after the tasks have stopped.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if let Some(loaded) = self.loaded {
            loaded.stopped().await;
        }
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

/// Loads every plugin under `plugin_path`: launches the sidecars that have a
/// command (supervised until `shutdown`), attaches to the ones that have an
/// address, and handshakes with each. `runtime_dir` holds the sockets of
/// launched sidecars.
pub async fn load(
    plugin_path: &str,
    runtime_dir: &std::path::Path,
    runner_id: &str,
    shutdown: &CancellationToken,
) -> Loaded {
    let (manifests, manifest_errors) = manifest::discover(plugin_path);
    let mut loaded = Loaded {
        plugins: Vec::new(),
        errors: manifest_errors.iter().map(ToString::to_string).collect(),
        supervisors: tokio::task::JoinSet::new(),
    };
    for manifest in manifests {
        match load_one(
            &manifest,
            runtime_dir,
            runner_id,
            shutdown,
            &mut loaded.supervisors,
        )
        .await
        {
            Ok(plugins) => {
                for plugin in plugins {
                    tracing::info!(sidecar = %manifest.name, class = plugin.class(), "sidecar plugin loaded");
                    loaded.plugins.push(Arc::new(plugin));
                }
            }
            Err(message) => loaded.errors.push(format!(
                "plugin {} ({}): {message}",
                manifest.name,
                manifest.file.display()
            )),
        }
    }
    for error in &loaded.errors {
        tracing::error!("{error}");
    }
    loaded
}

async fn load_one(
    manifest: &Manifest,
    runtime_dir: &std::path::Path,
    runner_id: &str,
    shutdown: &CancellationToken,
    supervisors: &mut tokio::task::JoinSet<()>,
) -> Result<Vec<SidecarPlugin>, String> {
    let (target, mut child) = match &manifest.launch {
        Launch::Unix(path) => (ChannelTarget::Unix(path.clone()), None),
        Launch::Tcp(address) => (ChannelTarget::Tcp(address.clone()), None),
        Launch::Command { .. } => {
            std::fs::create_dir_all(runtime_dir)
                .map_err(|e| format!("cannot create {}: {e}", runtime_dir.display()))?;
            let socket = runtime_dir.join(format!("{}.sock", manifest.name));
            let _ = std::fs::remove_file(&socket);
            let child = supervisor::spawn(&manifest.name, &manifest.launch, &socket)?;
            (ChannelTarget::Unix(socket), Some(child))
        }
    };
    let channel = remote::channel(&target)?;
    let deadline = tokio::time::Instant::now() + READY_DEADLINE;
    let handshake = loop {
        match remote::handshake(&channel, runner_id).await {
            Ok(handshake) => break handshake,
            Err(status) => {
                if let Some(child) = child.as_mut()
                    && let Ok(Some(exit)) = child.try_wait()
                {
                    return Err(format!("the sidecar exited before it was ready ({exit})"));
                }
                // An attached sidecar must be up already; a launched one gets time to start.
                if child.is_none() || tokio::time::Instant::now() >= deadline {
                    if let Some(child) = child.as_mut() {
                        supervisor::stop(child).await;
                    }
                    return Err(format!("no handshake: {}", status.message()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    tracing::info!(sidecar = %manifest.name, sdk = %handshake.sdk, version = handshake.version, "sidecar ready");
    let liveness = liveness::Liveness::probe(&manifest.name, channel.clone(), shutdown.clone());
    let plugins = SidecarPlugin::from_handshake(&manifest.name, &channel, &liveness, &handshake);
    if let (Some(child), ChannelTarget::Unix(socket)) = (child, target) {
        supervisors.spawn(supervisor::supervise(
            manifest.name.clone(),
            manifest.launch.clone(),
            socket,
            child,
            shutdown.clone(),
        ));
    }
    Ok(plugins)
}
