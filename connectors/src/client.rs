//! Kafka client settings inside worker and connector configs: the
//! connector client-override prefixes and the worker's
//! `connector.client.config.override.policy` (KIP-458), and which keys hold
//! secrets that must never be shown.

use crate::config::ConfigMap;

/// The worker key that chooses the override policy.
pub const OVERRIDE_POLICY_KEY: &str = "connector.client.config.override.policy";

/// The connector-level prefixes that override a task's client settings.
pub const OVERRIDE_PREFIXES: [&str; 3] = [
    "producer.override.",
    "consumer.override.",
    "admin.override.",
];

/// What a connector may override in its task clients' settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverridePolicy {
    /// No override is allowed.
    None,
    /// Only the principal: `security.protocol`, `sasl.jaas.config`, `sasl.mechanism`.
    Principal,
    /// Every override is allowed (Kafka Connect's default).
    #[default]
    All,
}

const PRINCIPAL_KEYS: [&str; 3] = ["security.protocol", "sasl.jaas.config", "sasl.mechanism"];

impl OverridePolicy {
    /// Reads the policy from worker properties; absent means `All`.
    pub fn from_worker(properties: &ConfigMap) -> Result<Self, String> {
        match properties.get(OVERRIDE_POLICY_KEY) {
            None => Ok(OverridePolicy::All),
            Some(raw) => OverridePolicy::parse(raw),
        }
    }

    /// Parses a policy name, as Kafka Connect's short names or class names.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        let short = name
            .rsplit('.')
            .next()
            .unwrap_or(name)
            .trim_end_matches("ConnectorClientConfigOverridePolicy");
        match short.to_ascii_lowercase().as_str() {
            "none" => Ok(OverridePolicy::None),
            "principal" => Ok(OverridePolicy::Principal),
            "all" => Ok(OverridePolicy::All),
            _ => Err(format!(
                "Invalid value {name} for configuration {OVERRIDE_POLICY_KEY}: must be one of None, Principal, All"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OverridePolicy::None => "None",
            OverridePolicy::Principal => "Principal",
            OverridePolicy::All => "All",
        }
    }

    fn allows(self, client_key: &str) -> bool {
        match self {
            OverridePolicy::None => false,
            OverridePolicy::Principal => PRINCIPAL_KEYS.contains(&client_key),
            OverridePolicy::All => true,
        }
    }

    /// The connector's override keys this policy forbids, each with Kafka
    /// Connect's message.
    pub fn violations(self, connector: &ConfigMap) -> Vec<(String, String)> {
        connector
            .keys()
            .filter_map(|key| {
                let client_key = OVERRIDE_PREFIXES
                    .iter()
                    .find_map(|prefix| key.strip_prefix(prefix))?;
                (!self.allows(client_key)).then(|| {
                    (
                        key.clone(),
                        format!(
                            "The '{}' policy does not allow '{client_key}' to be overridden in the connector configuration.",
                            self.name()
                        ),
                    )
                })
            })
            .collect()
    }
}

/// What `GET` responses and validation show instead of a secret.
pub const HIDDEN: &str = "[hidden]";

/// Whether a config key holds a secret: passwords, JAAS configs (which
/// carry passwords), private keys and client secrets, under any prefix.
pub fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    last.eq_ignore_ascii_case("password")
        || last.eq_ignore_ascii_case("secret")
        || key.ends_with("sasl.jaas.config")
        || key.ends_with("ssl.keystore.key")
        || key.ends_with("ssl.key.pem")
        || key.ends_with("client.secret")
        || key.ends_with("basic.auth.user.info")
}

/// A copy of `config` with every secret value replaced by `[hidden]`.
pub fn mask_secrets(config: &ConfigMap) -> ConfigMap {
    config
        .iter()
        .map(|(key, value)| {
            let shown = if is_secret_key(key) {
                HIDDEN.to_owned()
            } else {
                value.clone()
            };
            (key.clone(), shown)
        })
        .collect()
}

/// Puts back secrets that a client sent as `[hidden]` (it read them masked
/// and wrote the config back), from the stored config.
pub fn restore_hidden_secrets(config: &mut ConfigMap, stored: &ConfigMap) {
    for (key, value) in config.iter_mut() {
        if value == HIDDEN
            && is_secret_key(key)
            && let Some(previous) = stored.get(key)
        {
            value.clone_from(previous);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn policies_parse_from_short_and_class_names() {
        assert_eq!(OverridePolicy::parse("None"), Ok(OverridePolicy::None));
        assert_eq!(
            OverridePolicy::parse(
                "org.apache.kafka.connect.connector.policy.PrincipalConnectorClientConfigOverridePolicy"
            ),
            Ok(OverridePolicy::Principal)
        );
        assert_eq!(
            OverridePolicy::from_worker(&ConfigMap::new()),
            Ok(OverridePolicy::All)
        );
        assert!(OverridePolicy::parse("Some").is_err());
    }

    #[test]
    fn policies_allow_what_kafka_connect_allows() {
        let connector = config(&[
            ("producer.override.sasl.jaas.config", "x"),
            ("consumer.override.max.poll.interval.ms", "1"),
            ("topic", "t"),
        ]);
        assert!(OverridePolicy::All.violations(&connector).is_empty());
        let principal = OverridePolicy::Principal.violations(&connector);
        assert_eq!(
            principal,
            vec![(
                "consumer.override.max.poll.interval.ms".to_owned(),
                "The 'Principal' policy does not allow 'max.poll.interval.ms' to be overridden in the connector configuration.".to_owned()
            )]
        );
        assert_eq!(OverridePolicy::None.violations(&connector).len(), 2);
    }

    #[test]
    fn secrets_are_masked_and_restored() {
        let stored = config(&[
            ("producer.override.sasl.jaas.config", "secret-jaas"),
            ("producer.override.ssl.truststore.password", "pw"),
            ("topic", "t"),
        ]);
        let shown = mask_secrets(&stored);
        assert_eq!(shown["producer.override.sasl.jaas.config"], HIDDEN);
        assert_eq!(shown["producer.override.ssl.truststore.password"], HIDDEN);
        assert_eq!(shown["topic"], "t");
        let mut written = shown.clone();
        written.insert("topic".into(), "u".into());
        restore_hidden_secrets(&mut written, &stored);
        assert_eq!(written["producer.override.sasl.jaas.config"], "secret-jaas");
        assert_eq!(written["topic"], "u");
        assert!(!is_secret_key("ssl.truststore.location"));
        assert!(is_secret_key("ssl.key.password"));
    }
}
