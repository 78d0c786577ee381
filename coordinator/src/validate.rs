//! Connector config validation in Kafka Connect's `ConfigInfos` shape: the
//! base connector keys, the source- or sink-specific keys and the plugin's
//! own keys, each with its value and errors.

use weir_connect::client::{HIDDEN, OverridePolicy, is_secret_key};
use weir_connect::config::ConfigKey;
use weir_connect::config::{ConfigMap, ConfigType, Direction, base_connector_def, parse_list};
use weir_connect::transforms::{
    TransformChain, create_predicate, create_transform, defs, predicate_simple_name, settings_of,
    split_class,
};
use weir_proto::admin::v1::{ConfigInfo, ConfigInfos, ConfigKeyDefinition, ConfigValueInfo};

use crate::plugins::Plugin;

/// Converter classes this build does not have.
fn converter_class_errors(config: &ConfigMap) -> Vec<(String, Vec<String>)> {
    use weir_connect::converter::{resolve_class, resolve_header_class};
    type Resolve = fn(&str) -> Option<&'static str>;
    let roles: [(&str, Resolve); 3] = [
        ("key.converter", resolve_class),
        ("value.converter", resolve_class),
        ("header.converter", resolve_header_class),
    ];
    roles
        .into_iter()
        .filter_map(|(key, resolve)| {
            let class = config.get(key)?;
            if resolve(class).is_some() || is_placeholder(class) {
                return None;
            }
            Some((
                key.to_owned(),
                vec![format!(
                    "Invalid value {class} for configuration {key}: Class {class} could not be found."
                )],
            ))
        })
        .collect()
}

/// Whether a value is, or holds, a `${provider:…}` config placeholder.
fn is_placeholder(value: &str) -> bool {
    value
        .find("${")
        .is_some_and(|start| value[start..].contains(':') && value[start..].contains('}'))
}

/// A config key as Kafka Connect's `ConfigKeyInfo` shows it.
pub fn key_definition(key: &ConfigKey) -> ConfigKeyDefinition {
    ConfigKeyDefinition {
        name: key.name.to_owned(),
        r#type: key.config_type.name().to_owned(),
        required: key.is_required(),
        default_value: key.default_value().map(str::to_owned),
        importance: key.importance.name().to_owned(),
        documentation: key.documentation.to_owned(),
        group: key.group.to_owned(),
        order: key.order,
        width: key.width.name().to_owned(),
        display_name: key.display_name.to_owned(),
        dependents: Vec::new(),
    }
}

/// Validates `config` against `plugin` and the worker's client override
/// policy; `error_count` says whether it is valid. Secret values show as
/// `[hidden]`.
pub async fn config_infos(
    plugin: &Plugin,
    config: &ConfigMap,
    policy: OverridePolicy,
) -> ConfigInfos {
    let mut def = base_connector_def(plugin.kind()).extend(plugin.described().config_def);
    // A converter set in the connector config: its own keys too, under the
    // converter's prefix, as Kafka Connect validates them.
    for role in ["key.converter", "value.converter", "header.converter"] {
        let Some(own) = config
            .get(role)
            .and_then(|class| weir_connect::converter::converter_def(class))
        else {
            continue;
        };
        for key in own.keys {
            let mut prefixed = key.clone();
            prefixed.name = weir_connect::wire::intern(&format!("{role}.{}", key.name));
            def = def.define(prefixed);
        }
    }
    let mut configs: Vec<ConfigInfo> = def
        .keys
        .iter()
        .map(|key| {
            let raw = config.get(key.name).map(String::as_str);
            let shown = raw.or(key.default_value()).map(|value| {
                if key.config_type == ConfigType::Password {
                    "[hidden]".to_owned()
                } else {
                    value.to_owned()
                }
            });
            ConfigInfo {
                definition: Some(key_definition(key)),
                value: Some(ConfigValueInfo {
                    name: key.name.to_owned(),
                    value: shown,
                    recommended_values: Vec::new(),
                    // A `${provider:…}` placeholder is resolved on the
                    // runner, where the provider is: its type is checked there.
                    errors: if raw.is_some_and(is_placeholder) {
                        Vec::new()
                    } else {
                        key.check(raw)
                    },
                    visible: true,
                }),
            }
        })
        .collect();

    let mut extra = plugin.custom_errors(config).await;
    let mut alias_groups = Vec::new();
    let alias_errors = alias_infos(config, &mut configs, &mut alias_groups);
    if alias_errors == 0
        && let Err(message) = TransformChain::from_config(config)
    {
        extra.push(("transforms".to_owned(), vec![message]));
    }
    if plugin.kind() == Direction::Sink {
        extra.extend(sink_topic_errors(config));
    }
    extra.extend(converter_class_errors(config));
    extra.extend(
        policy
            .violations(config)
            .into_iter()
            .map(|(key, message)| (key, vec![message])),
    );
    for (name, errors) in extra {
        if errors.is_empty() {
            continue;
        }
        match configs
            .iter_mut()
            .find(|info| info.value.as_ref().is_some_and(|v| v.name == name))
        {
            Some(info) => {
                if let Some(value) = info.value.as_mut() {
                    // A plugin's own validate often repeats what its
                    // ConfigDef already said (a missing required key).
                    for error in errors {
                        if !value.errors.contains(&error) {
                            value.errors.push(error);
                        }
                    }
                }
            }
            None => configs.push(ConfigInfo {
                definition: None,
                value: Some(ConfigValueInfo {
                    name: name.clone(),
                    value: config.get(&name).map(|value| {
                        if is_secret_key(&name) {
                            HIDDEN.to_owned()
                        } else {
                            value.clone()
                        }
                    }),
                    recommended_values: Vec::new(),
                    errors,
                    visible: true,
                }),
            }),
        }
    }

    let mut groups: Vec<String> = Vec::new();
    for key in &def.keys {
        if !key.group.is_empty() && !groups.iter().any(|g| g == key.group) {
            groups.push(key.group.to_owned());
        }
    }
    groups.extend(alias_groups);
    let error_count = configs
        .iter()
        .filter_map(|info| info.value.as_ref())
        .map(|value| value.errors.len())
        .sum::<usize>();
    ConfigInfos {
        name: config.get("connector.class").cloned().unwrap_or_default(),
        error_count: i32::try_from(error_count).unwrap_or(i32::MAX),
        groups,
        configs,
    }
}

/// One `ConfigInfo` for a key of an alias (`transforms.<alias>.<key>`), with
/// the key's messages naming the full key.
fn alias_info(
    key: &ConfigKey,
    full: &str,
    group: &str,
    raw: Option<&str>,
    extra: Vec<String>,
) -> ConfigInfo {
    let errors = key
        .check(raw)
        .into_iter()
        .map(|m| {
            m.replace(&format!("\"{}\"", key.name), &format!("\"{full}\""))
                .replace(
                    &format!("configuration {}:", key.name),
                    &format!("configuration {full}:"),
                )
        })
        .chain(extra)
        .collect();
    ConfigInfo {
        definition: Some(ConfigKeyDefinition {
            name: full.to_owned(),
            r#type: key.config_type.name().to_owned(),
            required: key.is_required(),
            default_value: key.default_value().map(str::to_owned),
            importance: key.importance.name().to_owned(),
            documentation: key.documentation.to_owned(),
            group: group.to_owned(),
            order: key.order,
            width: key.width.name().to_owned(),
            display_name: full.to_owned(),
            dependents: Vec::new(),
        }),
        value: Some(ConfigValueInfo {
            name: full.to_owned(),
            value: raw.or(key.default_value()).map(str::to_owned),
            recommended_values: Vec::new(),
            errors,
            visible: true,
        }),
    }
}

/// Adds the keys of every transform and predicate alias (their `type`,
/// `predicate`, `negate` and the class's own keys) under groups
/// `Transforms: <alias>` / `Predicates: <alias>`; returns how many errors it found.
fn alias_infos(
    config: &ConfigMap,
    configs: &mut Vec<ConfigInfo>,
    groups: &mut Vec<String>,
) -> usize {
    let predicate_aliases = config
        .get("predicates")
        .map(|p| parse_list(p))
        .unwrap_or_default();
    let mut found = 0;
    let mut push = |info: ConfigInfo, configs: &mut Vec<ConfigInfo>| {
        found += info.value.as_ref().map_or(0, |v| v.errors.len());
        configs.push(info);
    };
    for alias in config
        .get("transforms")
        .map(|t| parse_list(t))
        .unwrap_or_default()
    {
        let group = format!("Transforms: {alias}");
        let prefix = format!("transforms.{alias}.");
        let settings = settings_of(config, &prefix);
        let mut def = defs::transform_base();
        let mut type_errors = Vec::new();
        if let Some(class) = settings.get("type") {
            let (name, _) = split_class(class);
            match defs::transform_def(&name) {
                Some(own) => {
                    def = def.extend(own);
                    // Checks beyond single keys, e.g. a missing $Key/$Value or a bad regex.
                    if let Err(message) = create_transform(class, &settings)
                        && !message.starts_with("Missing required configuration")
                    {
                        type_errors.push(message);
                    }
                }
                None => type_errors.push(format!(
                    "Invalid value {class} for configuration {prefix}type: Class {class} could not be found."
                )),
            }
        }
        let predicate = settings
            .get("predicate")
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty());
        let negated = settings
            .get("negate")
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("true"));
        for key in &def.keys {
            let full = format!("{prefix}{}", key.name);
            let mut extra = Vec::new();
            match key.name {
                "type" => extra.append(&mut type_errors),
                "predicate" => {
                    if let Some(p) = &predicate
                        && !predicate_aliases.contains(p)
                    {
                        extra.push(format!(
                            "Invalid value {p} for configuration {full}: undefined predicate"
                        ));
                    }
                }
                "negate" if negated && predicate.is_none() => {
                    extra.push(format!("Invalid value true for configuration {full}: negate can only be used with a predicate"));
                }
                _ => {}
            }
            push(
                alias_info(
                    key,
                    &full,
                    &group,
                    settings.get(key.name).map(String::as_str),
                    extra,
                ),
                configs,
            );
        }
        groups.push(group);
    }
    for alias in predicate_aliases {
        let group = format!("Predicates: {alias}");
        let prefix = format!("predicates.{alias}.");
        let settings = settings_of(config, &prefix);
        let mut def = defs::predicate_base();
        let mut type_errors = Vec::new();
        if let Some(class) = settings.get("type") {
            match defs::predicate_def(predicate_simple_name(class)) {
                Some(own) => {
                    def = def.extend(own);
                    if let Err(message) = create_predicate(class, &settings)
                        && !message.starts_with("Missing required configuration")
                    {
                        type_errors.push(message);
                    }
                }
                None => type_errors.push(format!(
                    "Invalid value {class} for configuration {prefix}type: Class {class} could not be found."
                )),
            }
        }
        for key in &def.keys {
            let full = format!("{prefix}{}", key.name);
            let extra = if key.name == "type" {
                std::mem::take(&mut type_errors)
            } else {
                Vec::new()
            };
            push(
                alias_info(
                    key,
                    &full,
                    &group,
                    settings.get(key.name).map(String::as_str),
                    extra,
                ),
                configs,
            );
        }
        groups.push(group);
    }
    found
}

/// `SinkConnectorConfig.validate`: exactly one of topics / topics.regex,
/// and the DLQ topic must not be consumed.
fn sink_topic_errors(config: &ConfigMap) -> Vec<(String, Vec<String>)> {
    let topics = config
        .get("topics")
        .map(|t| parse_list(t))
        .unwrap_or_default();
    let regex = config.get("topics.regex").map(|r| r.trim()).unwrap_or("");
    let mut errors = Vec::new();
    if !topics.is_empty() && !regex.is_empty() {
        let message =
            "topics and topics.regex are mutually exclusive options, but both are set.".to_owned();
        errors.push(("topics".to_owned(), vec![message.clone()]));
        errors.push(("topics.regex".to_owned(), vec![message]));
    } else if topics.is_empty() && regex.is_empty() {
        let message = "Must configure one of topics or topics.regex".to_owned();
        errors.push(("topics".to_owned(), vec![message.clone()]));
        errors.push(("topics.regex".to_owned(), vec![message]));
    }
    if let Some(dlq) = config
        .get("errors.deadletterqueue.topic.name")
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
        && topics.iter().any(|t| t == dlq)
    {
        errors.push((
                "errors.deadletterqueue.topic.name".to_owned(),
                vec![format!(
                    "The DLQ topic '{dlq}' may not be included in the list of topics ('topics={}') to be consumed.",
                    topics.join(",")
                )],
            ));
    }
    errors
}

/// The 400 message Kafka Connect gives for an invalid config on create/update.
pub fn invalid_config_message(infos: &ConfigInfos) -> String {
    let messages: Vec<&str> = infos
        .configs
        .iter()
        .filter_map(|info| info.value.as_ref())
        .flat_map(|value| value.errors.iter().map(String::as_str))
        .collect();
    format!(
        "Connector configuration is invalid and contains the following {} error(s):\n{}\nYou can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`",
        messages.len(),
        messages.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_connect::file::{FileStreamSink, FileStreamSource};

    fn names(infos: &ConfigInfos) -> Vec<String> {
        let mut names: Vec<String> = infos
            .configs
            .iter()
            .filter_map(|c| c.value.as_ref().map(|v| v.name.clone()))
            .collect();
        names.sort();
        names
    }

    fn sorted(list: &str) -> Vec<String> {
        let mut names: Vec<String> = list.split(", ").map(str::to_owned).collect();
        names.sort();
        names
    }

    // The exact key sets Kafka's connect_rest_test.py asserts.
    #[tokio::test]
    async fn file_source_validate_lists_kafka_connects_keys() {
        let config = ConfigMap::from([
            ("connector.class".to_owned(), "FileStreamSource".to_owned()),
            ("name".to_owned(), "s".to_owned()),
            ("topic".to_owned(), "t".to_owned()),
        ]);
        let infos = config_infos(
            &Plugin::Local(Arc::new(FileStreamSource)),
            &config,
            OverridePolicy::All,
        )
        .await;
        assert_eq!(infos.error_count, 0, "{infos:?}");
        assert_eq!(
            names(&infos),
            sorted(
                "name, connector.class, tasks.max, key.converter, value.converter, header.converter, batch.size, topic, file, transforms, config.action.reload, errors.retry.timeout, errors.retry.delay.max.ms, errors.tolerance, errors.log.enable, errors.log.include.messages, predicates, topic.creation.groups, exactly.once.support, transaction.boundary, transaction.boundary.interval.ms, offsets.storage.topic, tasks.max.enforce"
            )
        );
        assert_eq!(infos.name, "FileStreamSource");
    }

    #[tokio::test]
    async fn file_sink_validate_lists_kafka_connects_keys_and_topic_errors() {
        let config = ConfigMap::from([
            ("connector.class".to_owned(), "FileStreamSink".to_owned()),
            ("name".to_owned(), "s".to_owned()),
        ]);
        let infos = config_infos(
            &Plugin::Local(Arc::new(FileStreamSink)),
            &config,
            OverridePolicy::All,
        )
        .await;
        assert_eq!(
            names(&infos),
            sorted(
                "name, connector.class, tasks.max, key.converter, value.converter, header.converter, topics, file, transforms, topics.regex, config.action.reload, errors.retry.timeout, errors.retry.delay.max.ms, errors.tolerance, errors.log.enable, errors.log.include.messages, errors.deadletterqueue.topic.name, errors.deadletterqueue.topic.replication.factor, errors.deadletterqueue.context.headers.enable, predicates, tasks.max.enforce"
            )
        );
        assert_eq!(infos.error_count, 2);
        assert!(invalid_config_message(&infos).starts_with(
            "Connector configuration is invalid and contains the following 2 error(s):\nMust configure one of topics or topics.regex\n"
        ));
    }

    #[tokio::test]
    async fn transforms_and_predicates_are_validated_per_alias() {
        let config = ConfigMap::from([
            ("connector.class".to_owned(), "FileStreamSource".to_owned()),
            ("name".to_owned(), "s".to_owned()),
            ("topic".to_owned(), "t".to_owned()),
            ("transforms".to_owned(), "route,mask,bad".to_owned()),
            (
                "transforms.route.type".to_owned(),
                "org.apache.kafka.connect.transforms.RegexRouter".to_owned(),
            ),
            ("transforms.route.regex".to_owned(), "(.*)".to_owned()),
            ("transforms.route.predicate".to_owned(), "isLogs".to_owned()),
            (
                "transforms.mask.type".to_owned(),
                "org.apache.kafka.connect.transforms.MaskField$Value".to_owned(),
            ),
            (
                "transforms.bad.type".to_owned(),
                "NoSuchTransform".to_owned(),
            ),
            ("predicates".to_owned(), "isLogs".to_owned()),
            (
                "predicates.isLogs.type".to_owned(),
                "org.apache.kafka.connect.transforms.predicates.TopicNameMatches".to_owned(),
            ),
            ("predicates.isLogs.pattern".to_owned(), "logs-.*".to_owned()),
        ]);
        let infos = config_infos(
            &Plugin::Local(Arc::new(FileStreamSource)),
            &config,
            OverridePolicy::All,
        )
        .await;
        for group in [
            "Transforms: route",
            "Transforms: mask",
            "Transforms: bad",
            "Predicates: isLogs",
        ] {
            assert!(
                infos.groups.iter().any(|g| g == group),
                "{group} in {:?}",
                infos.groups
            );
        }
        let errors_of = |name: &str| -> Vec<String> {
            infos
                .configs
                .iter()
                .filter_map(|c| c.value.as_ref())
                .find(|v| v.name == name)
                .map(|v| v.errors.clone())
                .unwrap_or_else(|| panic!("{name} not listed"))
        };
        assert_eq!(
            errors_of("transforms.route.replacement"),
            [
                "Missing required configuration \"transforms.route.replacement\" which has no default value."
            ]
        );
        assert_eq!(
            errors_of("transforms.mask.fields"),
            [
                "Missing required configuration \"transforms.mask.fields\" which has no default value."
            ]
        );
        assert!(errors_of("transforms.bad.type")[0].contains("NoSuchTransform could not be found"));
        assert!(errors_of("transforms.route.predicate").is_empty());
        assert!(errors_of("predicates.isLogs.pattern").is_empty());
        assert_eq!(errors_of("transforms.route.negate"), Vec::<String>::new());
        assert_eq!(infos.error_count, 3, "{infos:?}");
        let definition = infos
            .configs
            .iter()
            .find(|c| {
                c.value
                    .as_ref()
                    .is_some_and(|v| v.name == "transforms.route.regex")
            })
            .unwrap();
        assert_eq!(
            definition.definition.as_ref().unwrap().group,
            "Transforms: route"
        );
    }

    #[tokio::test]
    async fn a_connector_level_converter_s_keys_are_validated() {
        let config = ConfigMap::from([
            ("name".to_owned(), "c".to_owned()),
            ("connector.class".to_owned(), "FileStreamSource".to_owned()),
            ("topic".to_owned(), "t".to_owned()),
            ("value.converter".to_owned(), "JsonConverter".to_owned()),
            (
                "value.converter.schemas.enable".to_owned(),
                "maybe".to_owned(),
            ),
        ]);
        let infos = config_infos(
            &Plugin::Local(Arc::new(FileStreamSource)),
            &config,
            OverridePolicy::All,
        )
        .await;
        let converter_key = infos
            .configs
            .iter()
            .find(|c| {
                c.value
                    .as_ref()
                    .is_some_and(|v| v.name == "value.converter.schemas.enable")
            })
            .and_then(|c| c.value.clone())
            .unwrap_or_default();
        assert_eq!(converter_key.errors.len(), 1, "{converter_key:?}");
        let failing: Vec<_> = infos
            .configs
            .iter()
            .filter_map(|c| c.value.as_ref())
            .filter(|v| !v.errors.is_empty())
            .map(|v| (v.name.clone(), v.errors.clone()))
            .collect();
        assert_eq!(infos.error_count, 1, "{failing:?}");
        assert!(!names(&infos).contains(&"key.converter.schemas.enable".to_owned()));
    }

    #[tokio::test]
    async fn missing_required_key_is_named() {
        let config =
            ConfigMap::from([("connector.class".to_owned(), "FileStreamSource".to_owned())]);
        let infos = config_infos(
            &Plugin::Local(Arc::new(FileStreamSource)),
            &config,
            OverridePolicy::All,
        )
        .await;
        let message = invalid_config_message(&infos);
        assert!(
            message.contains("Missing required configuration \"topic\""),
            "{message}"
        );
        assert!(
            message.contains("Missing required configuration \"name\""),
            "{message}"
        );
    }
}
