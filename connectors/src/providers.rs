//! Config providers (KIP-297): `${provider:path:key}` placeholders in
//! connector configs, resolved on the runner when a connector or task
//! starts, from the providers the worker names in `config.providers`:
//!
//! - `FileConfigProvider`: `${file:/path/to/file.properties:key}`, a key of
//!   a properties file;
//! - `DirectoryConfigProvider`: `${dir:/path/to/dir:file}`, the contents of
//!   a file in a directory;
//! - `EnvVarConfigProvider`: `${env:NAME}`, an environment variable.
//!
//! The file and directory providers honour `allowed.paths` (KIP-993) and the
//! environment provider `allowlist.pattern` (KIP-887), both given as
//! `config.providers.<name>.param.<key>`. Stored configs keep their
//! placeholders; a placeholder that cannot be resolved is an error naming
//! the placeholder, never its value.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use regex::Regex;

use crate::config::{ConfigMap, parse_list};

pub const FILE_PROVIDER: &str = "org.apache.kafka.common.config.provider.FileConfigProvider";
pub const DIRECTORY_PROVIDER: &str =
    "org.apache.kafka.common.config.provider.DirectoryConfigProvider";
pub const ENV_PROVIDER: &str = "org.apache.kafka.common.config.provider.EnvVarConfigProvider";

enum Provider {
    File { allowed: Option<Vec<PathBuf>> },
    Directory { allowed: Option<Vec<PathBuf>> },
    Env { allowlist: Regex },
}

/// The providers a worker configured; empty when it configured none.
#[derive(Default)]
pub struct ConfigProviders {
    providers: BTreeMap<String, Provider>,
}

/// `${provider:path:key}` or `${provider:key}`.
/// Compiled once: every connector and task start resolves with it.
fn placeholder() -> &'static Regex {
    static PATTERN: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        // A fixed, valid pattern: compiling it cannot fail.
        Regex::new(r"\$\{([^}:]*?):(?:([^}]*?):)?([^}]*?)\}").unwrap_or_else(|_| unreachable!())
    });
    &PATTERN
}

/// The simple class name matches too, as Kafka Connect's plugin aliases do.
fn is_class(configured: &str, class: &str) -> bool {
    let configured = configured.trim();
    configured == class || class.rsplit('.').next() == Some(configured)
}

fn allowed_paths(params: &ConfigMap) -> Option<Vec<PathBuf>> {
    params
        .get("allowed.paths")
        .map(|raw| parse_list(raw).into_iter().map(PathBuf::from).collect())
}

/// `path` without `.`/`..` segments, so `allowed.paths` cannot be escaped.
fn normalized(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn check_allowed(allowed: &Option<Vec<PathBuf>>, path: &Path) -> Result<(), String> {
    let Some(allowed) = allowed else {
        return Ok(());
    };
    let path = normalized(path);
    if allowed
        .iter()
        .any(|root| path.starts_with(normalized(root)))
    {
        Ok(())
    } else {
        Err(format!("{} is not in allowed.paths", path.display()))
    }
}

impl ConfigProviders {
    /// Reads `config.providers` and each provider's `class` and `param.*`
    /// settings from worker properties; errors name the key.
    pub fn from_worker(worker: &ConfigMap) -> Result<Self, String> {
        let mut providers = BTreeMap::new();
        let Some(names) = worker.get("config.providers") else {
            return Ok(ConfigProviders { providers });
        };
        for name in parse_list(names) {
            let class_key = format!("config.providers.{name}.class");
            let class = worker
                .get(&class_key)
                .ok_or_else(|| format!("{class_key} is required for config provider {name}"))?;
            let prefix = format!("config.providers.{name}.param.");
            let params: ConfigMap = worker
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_owned(), v.clone())))
                .collect();
            let provider = if is_class(class, FILE_PROVIDER) {
                Provider::File {
                    allowed: allowed_paths(&params),
                }
            } else if is_class(class, DIRECTORY_PROVIDER) {
                Provider::Directory {
                    allowed: allowed_paths(&params),
                }
            } else if is_class(class, ENV_PROVIDER) {
                let pattern = params.get("allowlist.pattern").map_or(".*", String::as_str);
                let allowlist = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                    format!("{prefix}allowlist.pattern: invalid regular expression: {e}")
                })?;
                Provider::Env { allowlist }
            } else {
                return Err(format!(
                    "{class_key}: {class} is not a config provider this runner has (use {FILE_PROVIDER}, {DIRECTORY_PROVIDER} or {ENV_PROVIDER})"
                ));
            };
            providers.insert(name, provider);
        }
        Ok(ConfigProviders { providers })
    }

    /// `config` with every placeholder of a configured provider replaced by
    /// its value. Placeholders naming an unconfigured provider stay as they
    /// are, as in Kafka Connect.
    pub fn resolve(&self, config: &ConfigMap) -> Result<ConfigMap, String> {
        if self.providers.is_empty() {
            return Ok(config.clone());
        }
        let pattern = placeholder();
        let mut resolved = ConfigMap::new();
        for (key, value) in config {
            let mut failure = None;
            let replaced = pattern.replace_all(value, |captures: &regex::Captures<'_>| {
                let whole = &captures[0];
                let Some(provider) = self.providers.get(&captures[1]) else {
                    return whole.to_owned();
                };
                let path = captures.get(2).map_or("", |m| m.as_str());
                let name = &captures[3];
                match lookup(provider, path, name) {
                    Ok(value) => value,
                    Err(error) => {
                        failure.get_or_insert(format!(
                            "cannot resolve {whole} in config key {key}: {error}"
                        ));
                        whole.to_owned()
                    }
                }
            });
            if let Some(failure) = failure {
                return Err(failure);
            }
            resolved.insert(key.clone(), replaced.into_owned());
        }
        Ok(resolved)
    }
}

fn lookup(provider: &Provider, path: &str, name: &str) -> Result<String, String> {
    match provider {
        Provider::File { allowed } => {
            let file = Path::new(path);
            check_allowed(allowed, file)?;
            let properties = crate::properties::read(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            properties
                .get(name)
                .cloned()
                .ok_or_else(|| format!("{} has no key {name}", file.display()))
        }
        Provider::Directory { allowed } => {
            let dir = Path::new(path);
            check_allowed(allowed, dir)?;
            if name.contains('/') || name == ".." {
                return Err(format!("{name} is not a file name"));
            }
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| format!("cannot read {name} in {}: {e}", dir.display()))
        }
        Provider::Env { allowlist } => {
            if !allowlist.is_match(name) {
                return Err(format!("{name} does not match allowlist.pattern"));
            }
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn providers(pairs: &[(&str, &str)]) -> ConfigProviders {
        let worker: ConfigMap = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ConfigProviders::from_worker(&worker).unwrap_or_default()
    }

    #[test]
    fn file_and_directory_placeholders_resolve_within_allowed_paths() {
        let dir = tempfile::tempdir().unwrap_or_else(|_| unreachable!());
        let secrets = dir.path().join("secrets.properties");
        std::fs::write(&secrets, "password=s3cret\ntopic=orders\n").unwrap_or_default();
        std::fs::write(dir.path().join("token"), "abc").unwrap_or_default();
        let root = dir.path().to_string_lossy().into_owned();
        let chosen = providers(&[
            ("config.providers", "file,dir"),
            ("config.providers.file.class", "FileConfigProvider"),
            ("config.providers.file.param.allowed.paths", &root),
            ("config.providers.dir.class", DIRECTORY_PROVIDER),
        ]);
        let config = ConfigMap::from([
            (
                "topic".to_owned(),
                format!("${{file:{}:topic}}-v1", secrets.display()),
            ),
            ("token".to_owned(), format!("${{dir:{root}:token}}")),
            ("other".to_owned(), "${vault:x:y}".to_owned()),
        ]);
        let resolved = chosen.resolve(&config).unwrap_or_default();
        assert_eq!(resolved["topic"], "orders-v1");
        assert_eq!(resolved["token"], "abc");
        assert_eq!(resolved["other"], "${vault:x:y}", "unknown providers stay");

        let outside = ConfigMap::from([(
            "x".to_owned(),
            format!("${{file:{root}/../elsewhere.properties:password}}"),
        )]);
        let error = chosen.resolve(&outside).err().unwrap_or_default();
        assert!(error.contains("not in allowed.paths"), "{error}");
        assert!(!error.contains("s3cret"));
        let missing = ConfigMap::from([(
            "x".to_owned(),
            format!("${{file:{}:nope}}", secrets.display()),
        )]);
        let error = chosen.resolve(&missing).err().unwrap_or_default();
        assert!(error.contains("has no key nope"), "{error}");
    }

    #[test]
    fn env_placeholders_honour_the_allowlist() {
        let chosen = providers(&[
            ("config.providers", "env"),
            ("config.providers.env.class", ENV_PROVIDER),
            ("config.providers.env.param.allowlist.pattern", "PATH|HOME"),
        ]);
        let config = ConfigMap::from([("p".to_owned(), "${env:PATH}".to_owned())]);
        let resolved = chosen.resolve(&config).unwrap_or_default();
        assert_eq!(Some(&resolved["p"]), std::env::var("PATH").ok().as_ref());
        let denied = ConfigMap::from([("p".to_owned(), "${env:SHELL}".to_owned())]);
        let error = chosen.resolve(&denied).err().unwrap_or_default();
        assert!(
            error.contains("does not match allowlist.pattern"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_provider_setting_names_the_key() {
        let worker = ConfigMap::from([
            ("config.providers".to_owned(), "vault".to_owned()),
            (
                "config.providers.vault.class".to_owned(),
                "com.example.Vault".to_owned(),
            ),
        ]);
        let error = ConfigProviders::from_worker(&worker)
            .err()
            .unwrap_or_default();
        assert!(error.contains("config.providers.vault.class"), "{error}");
    }
}
