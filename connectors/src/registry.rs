//! The plugins this build knows: connectors by class name or alias (Kafka
//! Connect's aliases are the simple class name and that name without its
//! `Connector` suffix), plus the converters.

use std::sync::Arc;

use crate::api::ConnectorPlugin;
use crate::converter::CONVERTER_CLASSES;
use crate::file::{FileStreamSink, FileStreamSource};
use crate::verifiable::{VerifiableSink, VerifiableSource};

/// What `GET /connector-plugins` lists for one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSummary {
    pub class: String,
    /// `source`, `sink` or `converter`.
    pub plugin_type: &'static str,
    pub version: String,
}

/// Connector plugins (built in, and sidecars once added), looked up by
/// class name or alias.
#[derive(Clone)]
pub struct Registry {
    connectors: Vec<Arc<dyn ConnectorPlugin>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

pub use weir_api::api::{aliases, answers_to};

impl Registry {
    /// The connectors compiled into this build.
    pub fn builtin() -> Self {
        Registry {
            connectors: vec![
                Arc::new(FileStreamSink),
                Arc::new(FileStreamSource),
                Arc::new(VerifiableSink),
                Arc::new(VerifiableSource),
            ],
        }
    }

    /// No plugins at all.
    pub fn empty() -> Self {
        Registry {
            connectors: Vec::new(),
        }
    }

    /// Adds plugins from elsewhere (sidecars). A class that two plugins, or
    /// a plugin and a built-in, both claim is an error naming both.
    pub fn with_plugins(mut self, plugins: Vec<Arc<dyn ConnectorPlugin>>) -> Result<Self, String> {
        for plugin in plugins {
            let clash = self.connectors.iter().find(|known| {
                answers_to(known.class(), plugin.class())
                    || aliases(plugin.class())
                        .iter()
                        .any(|alias| answers_to(known.class(), alias))
            });
            if let Some(known) = clash {
                return Err(format!(
                    "connector class {} is claimed twice: by {} and by {}",
                    plugin.class(),
                    known.origin(),
                    plugin.origin()
                ));
            }
            self.connectors.push(plugin);
        }
        Ok(self)
    }

    /// Finds a connector by full class name, simple name, or simple name without `Connector`.
    pub fn connector(&self, name: &str) -> Option<Arc<dyn ConnectorPlugin>> {
        self.connectors
            .iter()
            .find(|plugin| answers_to(plugin.class(), name))
            .cloned()
    }

    pub fn connectors(&self) -> &[Arc<dyn ConnectorPlugin>] {
        &self.connectors
    }

    /// Every plugin, sorted by class name; converters only when asked.
    pub fn summaries(&self, connectors_only: bool) -> Vec<PluginSummary> {
        let version = env!("CARGO_PKG_VERSION").to_owned();
        let mut plugins: Vec<PluginSummary> = self
            .connectors
            .iter()
            .map(|plugin| PluginSummary {
                class: plugin.class().to_owned(),
                plugin_type: match plugin.kind() {
                    crate::config::Direction::Source => "source",
                    crate::config::Direction::Sink => "sink",
                },
                version: plugin.version().to_owned(),
            })
            .collect();
        if !connectors_only {
            let others = [
                (
                    "converter",
                    CONVERTER_CLASSES.iter().map(|c| (*c).to_owned()).collect(),
                ),
                (
                    "header_converter",
                    crate::converter::HEADER_CONVERTER_CLASSES
                        .iter()
                        .map(|c| (*c).to_owned())
                        .collect(),
                ),
                ("transformation", crate::transforms::transform_classes()),
                ("predicate", crate::transforms::predicate_classes()),
            ];
            for (plugin_type, classes) in others {
                plugins.extend(classes.into_iter().map(|class| PluginSummary {
                    class,
                    plugin_type,
                    version: version.clone(),
                }));
            }
        }
        plugins.sort_by(|a, b| a.class.cmp(&b.class));
        plugins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connectors_resolve_by_class_and_aliases() {
        let registry = Registry::builtin();
        for name in [
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "FileStreamSourceConnector",
            "FileStreamSource",
        ] {
            assert_eq!(
                registry.connector(name).map(|p| p.class()),
                Some(crate::file::SOURCE_CLASS),
                "{name}"
            );
        }
        assert_eq!(
            registry.connector("FileStreamSink").map(|p| p.class()),
            Some(crate::file::SINK_CLASS)
        );
        assert!(registry.connector("NoSuchConnector").is_none());
    }

    #[test]
    fn summaries_list_converters_only_on_request() {
        let registry = Registry::builtin();
        assert_eq!(registry.summaries(true).len(), 4);
        assert!(
            registry
                .summaries(false)
                .iter()
                .any(|p| p.plugin_type == "converter")
        );
    }
}
