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
    reported: Arc<Reported>,
}

/// Each runner's reported plugins, by runner id.
type Reported = BTreeMap<String, Vec<Described>>;

/// Encodes the plugins a runner reported, for `plugins/{runner}`.
pub fn encode(plugins: Vec<weir_proto::connector::v2::Plugin>) -> Vec<u8> {
    pb::PluginList { plugins }.encode_to_vec()
}

/// The runners' plugin lists as last decoded, reused while the stored lists
/// are unchanged. Each list carries every plugin's ConfigDef; decoding ten
/// of them for every create, status page and leader pass took tens of
/// milliseconds of a busy coordinator at 1,000 connectors, and the lists
/// change only when a runner joins.
#[derive(Clone, Default)]
pub struct PluginLists(Arc<std::sync::Mutex<Option<DecodedLists>>>);

struct DecodedLists {
    stored: Vec<(String, Vec<u8>)>,
    reported: Arc<Reported>,
}

impl PluginLists {
    /// `stored` (the `plugins/` keys and values) decoded, from the last
    /// decoding if they are the same.
    fn decoded(&self, stored: Vec<(String, Vec<u8>)>) -> Arc<Reported> {
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(last) = last.as_ref()
            && last.stored == stored
        {
            return last.reported.clone();
        }
        let reported = Arc::new(decode_lists(&stored));
        *last = Some(DecodedLists {
            stored,
            reported: reported.clone(),
        });
        reported
    }
}

fn decode_lists(stored: &[(String, Vec<u8>)]) -> Reported {
    let mut reported = BTreeMap::new();
    for (key, value) in stored {
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
    reported
}

impl Catalog {
    /// The catalog as etcd holds it now, for the leader's placement.
    pub async fn read(store: &Store, registry: Arc<Registry>, lists: &PluginLists) -> Result<Self> {
        let reported = lists.decoded(store.list(keys::PLUGINS).await?);
        Ok(Catalog { registry, reported })
    }

    /// The catalog with this coordinator's own writes and the others' as
    /// its watch delivered them ([`crate::store::KvStore::list_recent`]),
    /// for the admin API: a runner's plugins show up here a moment after
    /// it joined another coordinator.
    pub async fn read_recent(
        store: &Store,
        registry: Arc<Registry>,
        lists: &PluginLists,
    ) -> Result<Self> {
        let reported = lists.decoded(store.list_recent(keys::PLUGINS).await?);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(runners: &[&str]) -> Vec<(String, Vec<u8>)> {
        let registry = Registry::builtin();
        runners
            .iter()
            .map(|runner| {
                let plugins = registry
                    .connectors()
                    .iter()
                    .map(|plugin| wire::plugin_to_wire(plugin.as_ref()))
                    .collect();
                (keys::plugins(runner), encode(plugins))
            })
            .collect()
    }

    #[test]
    fn plugin_lists_are_decoded_again_only_when_they_change() {
        let lists = PluginLists::default();
        let first = lists.decoded(stored(&["r1"]));
        assert!(first["r1"].iter().any(|d| d.answers_to("VerifiableSource")));
        let again = lists.decoded(stored(&["r1"]));
        assert!(
            Arc::ptr_eq(&first, &again),
            "unchanged lists are not decoded again"
        );
        let changed = lists.decoded(stored(&["r1", "r2"]));
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_eq!(changed.keys().collect::<Vec<_>>(), ["r1", "r2"]);
    }
}
