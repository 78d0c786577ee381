//! `weir connectors apply -f FILE_OR_DIR`: connector files (Kafka Connect's
//! JSON, `{"name":…,"config":{…}}` or a flat config with `name`, and
//! `.properties`) made true on the cluster, idempotently: a connector is
//! created when missing, its config replaced only when a key differs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::rest::{OpsError, Rest, Result, segment};

/// The value Weir shows for a secret; it cannot be compared, so it counts as unchanged.
const HIDDEN: &str = "[hidden]";

/// One connector file, read.
#[derive(Debug, Clone)]
pub struct Desired {
    pub file: PathBuf,
    pub name: String,
    pub config: BTreeMap<String, String>,
}

/// What applying one connector did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// The keys that changed (added, removed or with a new value).
    Updated(Vec<String>),
    Unchanged,
}

/// The connector files at `path`: the file itself, or every `.json` and
/// `.properties` file of a directory, by name.
pub fn read_all(path: &Path) -> Result<Vec<Desired>> {
    if !path.is_dir() {
        return Ok(vec![read(path)?]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| OpsError::Input(format!("{}: {e}", path.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|file| {
            matches!(
                file.extension().and_then(|e| e.to_str()),
                Some("json" | "properties")
            )
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(OpsError::Input(format!(
            "{}: no .json or .properties connector files",
            path.display()
        )));
    }
    files.iter().map(|file| read(file)).collect()
}

/// One connector file.
pub fn read(path: &Path) -> Result<Desired> {
    let invalid = |why: String| OpsError::Input(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    let mut config: BTreeMap<String, String> =
        if path.extension().and_then(|e| e.to_str()) == Some("properties") {
            weir_connect::properties::parse(&text).into_iter().collect()
        } else {
            let document: Value =
                serde_json::from_str(&text).map_err(|e| invalid(format!("not JSON: {e}")))?;
            let (outer_name, object) = match document.get("config") {
                Some(config) => (document["name"].as_str(), config),
                None => (None, &document),
            };
            let Some(object) = object.as_object() else {
                return Err(invalid("the connector config is not a JSON object".into()));
            };
            let mut config: BTreeMap<String, String> = object
                .iter()
                .map(|(key, value)| {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (key.clone(), text)
                })
                .collect();
            if let Some(name) = outer_name {
                config
                    .entry("name".into())
                    .or_insert_with(|| name.to_owned());
            }
            config
        };
    let name = config
        .get("name")
        .cloned()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| invalid("the connector has no name".into()))?;
    config.insert("name".into(), name.clone());
    Ok(Desired {
        file: path.to_owned(),
        name,
        config,
    })
}

/// The keys whose values differ between what is wanted and what runs.
pub fn changed_keys(
    desired: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut keys: Vec<String> = desired
        .iter()
        .filter(|(key, value)| {
            current
                .get(*key)
                .is_none_or(|now| now != *value && now != HIDDEN)
        })
        .map(|(key, _)| key.clone())
        .collect();
    keys.extend(
        current
            .keys()
            .filter(|key| !desired.contains_key(*key))
            .cloned(),
    );
    keys.sort();
    keys
}

/// Creates or updates one connector, only when something differs.
pub fn apply(rest: &Rest, desired: &Desired) -> Result<Outcome> {
    let path = format!("/connectors/{}/config", segment(&desired.name));
    let current = match rest.get(&path) {
        Ok(Value::Object(map)) => Some(
            map.into_iter()
                .map(|(key, value)| {
                    let text = match value {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    (key, text)
                })
                .collect::<BTreeMap<_, _>>(),
        ),
        Ok(_) => None,
        Err(OpsError::Refused { status: 404, .. }) => None,
        Err(error) => return Err(error),
    };
    let changed = match &current {
        Some(current) => {
            let changed = changed_keys(&desired.config, current);
            if changed.is_empty() {
                return Ok(Outcome::Unchanged);
            }
            changed
        }
        None => Vec::new(),
    };
    let body = serde_json::to_value(&desired.config).unwrap_or(Value::Null);
    let (status, _) = rest.call("PUT", &path, Some(&body))?;
    Ok(if status == 201 || current.is_none() {
        Outcome::Created
    } else {
        Outcome::Updated(changed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn changes_are_added_removed_and_new_values_but_not_hidden_secrets() {
        let desired = map(&[
            ("a", "1"),
            ("b", "2"),
            ("password", "secret"),
            ("name", "x"),
        ]);
        let current = map(&[
            ("a", "1"),
            ("b", "3"),
            ("c", "4"),
            ("password", HIDDEN),
            ("name", "x"),
        ]);
        assert_eq!(changed_keys(&desired, &current), vec!["b", "c"]);
        assert!(changed_keys(&desired, &desired).is_empty());
    }

    #[test]
    fn json_and_properties_files_are_read_alike() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a.json");
        std::fs::write(
            &nested,
            r#"{"name":"a","config":{"connector.class":"X","tasks.max":2}}"#,
        )
        .unwrap();
        let flat = dir.path().join("b.json");
        std::fs::write(&flat, r#"{"name":"b","connector.class":"X"}"#).unwrap();
        let properties = dir.path().join("c.properties");
        std::fs::write(&properties, "name=c\nconnector.class=X\n").unwrap();
        let all = read_all(dir.path()).unwrap();
        let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(all[0].config["tasks.max"], "2");
        assert_eq!(all[0].config["name"], "a");
        assert_eq!(all[2].config["connector.class"], "X");
        std::fs::write(&flat, r#"{"connector.class":"X"}"#).unwrap();
        assert!(
            matches!(read(&flat), Err(OpsError::Input(message)) if message.contains("no name"))
        );
    }
}
