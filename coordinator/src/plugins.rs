//! The connector plugins the cluster can run. A coordinator runs no
//! connector code of its own beyond validating configs: it knows the
//! built-ins compiled into it, and whatever plugins (built-in or sidecar) the
//! live runners reported when they joined (`plugins/{runner}`). The leader
//! places a connector and its tasks only on runners that reported its plugin.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use prost::Message;
use weir_connect::api::ConnectorPlugin;
use weir_connect::config::{ConfigMap, Direction};
use weir_connect::registry::{PluginSummary, Registry};
use weir_connect::wire::{self, Described};
use weir_proto::control::v1 as pb;

use crate::error::Result;
use crate::keys;
use crate::store::Store;

/// A plugin found by name: one this process can call, or one a runner described.
pub enum Plugin {
    Local(Arc<dyn ConnectorPlugin>),
    /// Its own validate runs on a runner that reported it, through `remote`.
    Reported(Described, Option<RemoteValidate>),
}

/// Where a reported plugin's own validate can run: on one of `runners`
/// (those that reported it), if one is connected to this coordinator.
#[derive(Clone)]
pub struct RemoteValidate {
    pub links: crate::links::RunnerLinks,
    pub runners: BTreeSet<String>,
}

impl Plugin {
    pub fn described(&self) -> Described {
        match self {
            Plugin::Local(plugin) => Described::of(plugin.as_ref()),
            Plugin::Reported(described, _) => described.clone(),
        }
    }

    pub fn kind(&self) -> Direction {
        match self {
            Plugin::Local(plugin) => plugin.kind(),
            Plugin::Reported(described, _) => described.kind,
        }
    }

    /// The plugin's own checks (its `validate`; a sidecar's Validate). A
    /// reported plugin's run on a runner connected here that has it; with
    /// none connected here, only its ConfigDef is checked, and the runner
    /// that starts the connector runs the plugin's own checks then.
    pub async fn custom_errors(&self, config: &ConfigMap) -> Vec<(String, Vec<String>)> {
        match self {
            Plugin::Local(plugin) => plugin.validate(config).await,
            Plugin::Reported(_, None) => Vec::new(),
            Plugin::Reported(described, Some(remote)) => {
                match remote.links.validate(&remote.runners, config).await {
                    Some(Ok(errors)) => errors,
                    Some(Err(error)) => vec![(
                        "connector.class".to_owned(),
                        vec![format!(
                            "the plugin {} could not validate the config on a runner: {error}",
                            described.class
                        )],
                    )],
                    None => {
                        tracing::info!(
                            class = described.class,
                            "no runner with this plugin is connected to this coordinator: its own validate runs when the connector starts"
                        );
                        Vec::new()
                    }
                }
            }
        }
    }
}

/// The built-ins and every live runner's reported plugins, read once.
pub struct Catalog {
    registry: Arc<Registry>,
    reported: BTreeMap<String, Vec<Described>>,
}

/// Encodes the plugins a runner reported, for `plugins/{runner}`.
pub fn encode(plugins: Vec<weir_proto::connector::v2::Plugin>) -> Vec<u8> {
    pb::PluginList { plugins }.encode_to_vec()
}

impl Catalog {
    pub async fn read(store: &Store, registry: Arc<Registry>) -> Result<Self> {
        let mut reported = BTreeMap::new();
        for (key, value) in store.list(keys::PLUGINS).await? {
            let Some(runner) = key.strip_prefix(keys::PLUGINS).map(keys::decode) else {
                continue;
            };
            let Ok(list) = pb::PluginList::decode(value.as_slice()) else {
                tracing::warn!(%runner, "undecodable plugin list ignored");
                continue;
            };
            let described = list
                .plugins
                .iter()
                .filter_map(|plugin| wire::plugin_from_wire(plugin).ok())
                .collect();
            reported.insert(runner, described);
        }
        Ok(Catalog { registry, reported })
    }

    /// The plugin `name` (a class or alias) names: a local one first.
    pub fn find(&self, name: &str) -> Option<Plugin> {
        if let Some(local) = self.registry.connector(name) {
            return Some(Plugin::Local(local));
        }
        self.reported
            .values()
            .flatten()
            .find(|d| d.answers_to(name))
            .cloned()
            .map(|described| Plugin::Reported(described, None))
    }

    /// The runners that reported a plugin answering to `name`.
    pub fn runners_with(&self, name: &str) -> BTreeSet<String> {
        self.reported
            .iter()
            .filter(|(_, plugins)| plugins.iter().any(|d| d.answers_to(name)))
            .map(|(runner, _)| runner.clone())
            .collect()
    }

    /// Every connector class available anywhere, as `GET /connector-plugins`
    /// lists them (converters too unless `connectors_only`).
    pub fn summaries(&self, connectors_only: bool) -> Vec<PluginSummary> {
        let mut summaries = self.registry.summaries(connectors_only);
        for described in self.reported.values().flatten() {
            if summaries.iter().any(|s| s.class == described.class) {
                continue;
            }
            summaries.push(PluginSummary {
                class: described.class.to_owned(),
                plugin_type: match described.kind {
                    Direction::Source => "source",
                    Direction::Sink => "sink",
                },
                version: described.version.to_owned(),
            });
        }
        summaries.sort_by(|a, b| a.class.cmp(&b.class));
        summaries
    }

    /// The names of every connector class, for "available connectors are" messages.
    pub fn classes(&self) -> Vec<String> {
        let mut classes: Vec<String> = self
            .registry
            .connectors()
            .iter()
            .map(|p| p.class().to_owned())
            .chain(self.reported.values().flatten().map(|d| d.class.to_owned()))
            .collect();
        classes.sort();
        classes.dedup();
        classes
    }
}
