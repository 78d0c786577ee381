//! `plugin.path` manifests. `plugin.path` is a comma-separated list of
//! directories; each sub-directory holding a `weir-plugin.json` is one
//! sidecar plugin, either launched by the runner:
//!
//! ```json
//! {"name": "file-connectors", "command": "bin/weir-file-connectors",
//!  "args": [], "env": {"RUST_LOG": "info"}, "working_dir": "."}
//! ```
//!
//! (the runner passes the Unix socket to listen on as `WEIR_SIDECAR_SOCKET`;
//! a relative `command` or `working_dir` is relative to the plugin's
//! directory), or already running at an address:
//!
//! ```json
//! {"name": "orders", "address": "unix:/run/orders.sock"}
//! {"name": "orders", "address": "http://127.0.0.1:7070"}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The manifest file each plugin directory holds.
pub const MANIFEST_FILE: &str = "weir-plugin.json";

/// How a sidecar plugin is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// The runner starts the process and gives it a Unix socket.
    Command {
        command: PathBuf,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        working_dir: PathBuf,
    },
    /// A sidecar already listening on a Unix socket.
    Unix(PathBuf),
    /// A sidecar already listening on TCP (`http://host:port`).
    Tcp(String),
}

/// One sidecar plugin as its manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    /// Where the manifest was found, for messages.
    pub file: PathBuf,
    pub launch: Launch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    working_dir: Option<String>,
    address: Option<String>,
}

/// A manifest that cannot be used, naming the plugin (or its directory).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin} ({file}): {message}")]
pub struct ManifestError {
    pub plugin: String,
    pub file: String,
    pub message: String,
}

fn parse(file: &Path, text: &str) -> Result<Manifest, ManifestError> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let fallback_name = dir
        .file_name()
        .map_or_else(|| "?".to_owned(), |n| n.to_string_lossy().into_owned());
    let error = |plugin: &str, message: String| ManifestError {
        plugin: plugin.to_owned(),
        file: file.display().to_string(),
        message,
    };
    let raw: RawManifest = serde_json::from_str(text)
        .map_err(|e| error(&fallback_name, format!("malformed manifest: {e}")))?;
    let name = raw.name.trim().to_owned();
    if name.is_empty() {
        return Err(error(&fallback_name, "the manifest's name is empty".into()));
    }
    let relative = |path: &str| {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            dir.join(path)
        }
    };
    let launch = match (raw.command, raw.address) {
        (Some(command), None) => {
            // A bare name (no slash) is looked up on PATH, as a shell would.
            let command = if command.contains('/') {
                relative(&command)
            } else {
                PathBuf::from(command)
            };
            Launch::Command {
                command,
                args: raw.args,
                env: raw.env,
                working_dir: raw
                    .working_dir
                    .as_deref()
                    .map_or_else(|| dir.to_path_buf(), relative),
            }
        }
        (None, Some(address)) => {
            if let Some(path) = address.strip_prefix("unix:") {
                Launch::Unix(relative(path))
            } else if address.starts_with("http://") {
                Launch::Tcp(address)
            } else {
                return Err(error(
                    &name,
                    format!("address {address} must start with unix: or http://"),
                ));
            }
        }
        (Some(_), Some(_)) => {
            return Err(error(
                &name,
                "give either command or address, not both".into(),
            ));
        }
        (None, None) => return Err(error(&name, "give a command or an address".into())),
    };
    Ok(Manifest {
        name,
        file: file.to_path_buf(),
        launch,
    })
}

/// Every manifest under the `plugin.path` directories, in order; the ones
/// that cannot be read or parsed come back as errors, so one bad plugin does
/// not keep the others from loading.
pub fn discover(plugin_path: &str) -> (Vec<Manifest>, Vec<ManifestError>) {
    let mut manifests = Vec::new();
    let mut errors = Vec::new();
    for root in plugin_path
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        // Absolute, so commands stay right after a change of working directory.
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| PathBuf::from(root));
        let entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(e) => {
                errors.push(ManifestError {
                    plugin: root.display().to_string(),
                    file: root.display().to_string(),
                    message: format!("cannot read plugin.path directory: {e}"),
                });
                continue;
            }
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let file = dir.join(MANIFEST_FILE);
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    errors.push(ManifestError {
                        plugin: dir.display().to_string(),
                        file: file.display().to_string(),
                        message: format!("cannot read the manifest: {e}"),
                    });
                    continue;
                }
            };
            match parse(&file, &text) {
                Ok(manifest) => {
                    match manifests
                        .iter()
                        .find(|m: &&Manifest| m.name == manifest.name)
                    {
                        Some(first) => errors.push(ManifestError {
                            plugin: manifest.name.clone(),
                            file: file.display().to_string(),
                            message: format!(
                                "the name is taken by {}; plugin names must be unique",
                                first.file.display()
                            ),
                        }),
                        None if !manifest
                            .name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
                        {
                            errors.push(ManifestError {
                                plugin: manifest.name.clone(),
                                file: file.display().to_string(),
                                message:
                                    "a plugin name may hold only letters, digits, '-', '_' and '.'"
                                        .into(),
                            });
                        }
                        None => manifests.push(manifest),
                    }
                }
                Err(error) => errors.push(error),
            }
        }
    }
    (manifests, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let plugin = dir.join(name);
        std::fs::create_dir_all(&plugin).unwrap();
        std::fs::write(plugin.join(MANIFEST_FILE), text).unwrap();
    }

    #[test]
    fn manifests_launch_or_attach_and_bad_ones_name_the_plugin() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            "a",
            r#"{"name":"files","command":"bin/side","args":["-v"],"env":{"K":"V"}}"#,
        );
        write(
            root.path(),
            "b",
            r#"{"name":"remote","address":"unix:/run/x.sock"}"#,
        );
        write(
            root.path(),
            "c",
            r#"{"name":"broken","command":"x","address":"http://h:1"}"#,
        );
        write(root.path(), "d", "{not json");
        std::fs::create_dir_all(root.path().join("no-manifest")).unwrap();
        let (manifests, errors) = discover(&root.path().display().to_string());
        assert_eq!(manifests.len(), 2);
        assert_eq!(
            manifests[0].launch,
            Launch::Command {
                command: root.path().join("a/bin/side"),
                args: vec!["-v".into()],
                env: [("K".to_owned(), "V".to_owned())].into(),
                working_dir: root.path().join("a"),
            }
        );
        assert_eq!(manifests[1].launch, Launch::Unix("/run/x.sock".into()));
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{messages:?}");
        assert!(messages[0].contains("plugin broken"), "{messages:?}");
        assert!(
            messages[1].contains("plugin d") && messages[1].contains("malformed"),
            "{messages:?}"
        );
    }
}
