//! Named clusters, as kcctl's contexts: a JSON file (`$WEIR_CONFIG`, else
//! `~/.weir/contexts.json`) of `{"current": NAME, "contexts": {NAME: {"url": URL}}}`.
//! The cluster a command talks to: `--url`, else `WEIR_URL`, else
//! `--context`, else the current context, else `http://localhost:8083`.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::rest::{OpsError, Result};

pub const DEFAULT_URL: &str = "http://localhost:8083";

pub fn file() -> PathBuf {
    match std::env::var_os("WEIR_CONFIG") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".weir")
            .join("contexts.json"),
    }
}

pub fn load() -> Result<Value> {
    let path = file();
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| OpsError::Input(format!("{}: {e}", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(json!({"current": null, "contexts": {}}))
        }
        Err(error) => Err(OpsError::Input(format!("{}: {error}", path.display()))),
    }
}

fn save(contexts: &Value) -> Result<()> {
    let path = file();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| OpsError::Input(format!("{}: {e}", parent.display())))?;
    }
    let text = serde_json::to_string_pretty(contexts).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| OpsError::Input(format!("{}: {e}", path.display())))
}

/// The base URL for this invocation.
pub fn resolve(url: Option<&str>, context: Option<&str>) -> Result<String> {
    if let Some(url) = url {
        return Ok(url.to_owned());
    }
    if let Some(url) = std::env::var("WEIR_URL").ok().filter(|u| !u.is_empty()) {
        return Ok(url);
    }
    let contexts = load()?;
    let name = match context {
        Some(name) => Some(name.to_owned()),
        None => contexts["current"].as_str().map(str::to_owned),
    };
    match name {
        Some(name) => contexts["contexts"][&name]["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                OpsError::Input(format!("no context named {name} in {}", file().display()))
            }),
        None => Ok(DEFAULT_URL.to_owned()),
    }
}

/// Adds or changes a context; the first one becomes current.
pub fn set(name: &str, url: &str) -> Result<()> {
    let mut contexts = load()?;
    contexts["contexts"][name] = json!({"url": url});
    if contexts["current"].is_null() {
        contexts["current"] = json!(name);
    }
    save(&contexts)
}

pub fn use_context(name: &str) -> Result<()> {
    let mut contexts = load()?;
    if contexts["contexts"].get(name).is_none() {
        return Err(OpsError::Input(format!(
            "no context named {name} in {}",
            file().display()
        )));
    }
    contexts["current"] = json!(name);
    save(&contexts)
}
