//! The process's log output and its levels, changeable while it runs
//! (Kafka Connect's `/admin/loggers`, KIP-495). Every Weir binary calls
//! [`init`] once; the REST layer and the runner change levels through
//! [`loggers`].
//!
//! Logger names are Weir's module paths (`weir_runner::sink`, …); Kafka
//! Connect's `org.apache.kafka.connect…` names map to the Weir modules that
//! do the same work, so scripts written for Kafka Connect keep working.
//! `root` is the level of everything not set otherwise.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Kafka Connect's logger names and the Weir modules they stand for.
const KAFKA_CONNECT_NAMES: &[(&str, &[&str])] = &[
    (
        "org.apache.kafka.connect",
        &["weir_runner", "weir_coordinator", "weir_connect", "weir"],
    ),
    ("org.apache.kafka.connect.runtime", &["weir_runner"]),
    (
        "org.apache.kafka.connect.runtime.WorkerSourceTask",
        &["weir_runner::source"],
    ),
    (
        "org.apache.kafka.connect.runtime.WorkerSinkTask",
        &["weir_runner::sink"],
    ),
    (
        "org.apache.kafka.connect.runtime.distributed",
        &["weir_coordinator::leader", "weir_coordinator::control"],
    ),
    (
        "org.apache.kafka.connect.runtime.rest",
        &["weir_coordinator::rest"],
    ),
    (
        "org.apache.kafka.connect.runtime.errors",
        &["weir_runner::tolerance"],
    ),
    (
        "org.apache.kafka.connect.transforms",
        &["weir_connect::transforms"],
    ),
    (
        "org.apache.kafka.connect.json",
        &["weir_connect::converter"],
    ),
    ("org.apache.kafka.connect.file", &["weir_connect::file"]),
];

/// Weir's own loggers (module paths) that can be named.
const WEIR_MODULES: &[&str] = &[
    "weir",
    "weir_connect",
    "weir_connect::converter",
    "weir_connect::file",
    "weir_connect::sdk",
    "weir_connect::transforms",
    "weir_coordinator",
    "weir_coordinator::admin",
    "weir_coordinator::control",
    "weir_coordinator::leader",
    "weir_coordinator::rest",
    "weir_coordinator::store",
    "weir_runner",
    "weir_runner::host",
    "weir_runner::instance",
    "weir_runner::offsets",
    "weir_runner::sink",
    "weir_runner::source",
    "weir_runner::tolerance",
    "weir_runner::worker",
];

/// A level as set, with when (ms since the epoch; `None` for the start-up level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerLevel {
    pub level: String,
    pub last_modified: Option<u64>,
}

/// Why a level could not be set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelError {
    /// Kafka Connect answers 404 for this (`invalid log level 'X'.`).
    InvalidLevel(String),
}

/// The levels of this process.
pub struct Loggers {
    reload: Option<reload::Handle<EnvFilter, Registry>>,
    state: Mutex<State>,
}

struct State {
    root: LoggerLevel,
    set: BTreeMap<String, LoggerLevel>,
}

static LOGGERS: OnceLock<Loggers> = OnceLock::new();

/// Installs the log output: `RUST_LOG` if set, else `default` (`info`).
pub fn init(default: &str) {
    init_with_format(default, LogFormat::Text);
}

/// `log.format`: lines of text, or one JSON object per line (with the
/// fields of the spans a line is in, such as a task's `connector` and `task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `log.format`'s value, or the error that names the key.
    pub fn parse(value: &str) -> Result<LogFormat, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "Invalid value {other} for configuration log.format: must be one of text, json"
            )),
        }
    }

    /// `log.format` from a worker's properties, else `WEIR_LOG_FORMAT`, else text.
    pub fn from_properties(properties: &crate::config::ConfigMap) -> Result<LogFormat, String> {
        match properties
            .get("log.format")
            .cloned()
            .or_else(|| std::env::var("WEIR_LOG_FORMAT").ok())
        {
            Some(value) => LogFormat::parse(&value),
            None => Ok(LogFormat::Text),
        }
    }
}

/// As [`init`], in the given format.
pub fn init_with_format(default: &str, format: LogFormat) {
    let start = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_owned());
    let filter = EnvFilter::try_new(&start).unwrap_or_else(|_| EnvFilter::new(default));
    let (layer, handle) = reload::Layer::new(filter);
    let (text, json) = match format {
        LogFormat::Text => (Some(tracing_subscriber::fmt::layer()), None),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            ),
        ),
    };
    let installed = tracing_subscriber::registry()
        .with(layer)
        .with(text)
        .with(json)
        .try_init()
        .is_ok();
    let root = start
        .split(',')
        .find(|d| !d.contains('='))
        .unwrap_or("info")
        .to_ascii_uppercase();
    let _ = LOGGERS.set(Loggers {
        reload: installed.then_some(handle),
        state: Mutex::new(State {
            root: LoggerLevel {
                level: root,
                last_modified: None,
            },
            set: BTreeMap::new(),
        }),
    });
}

/// The process's loggers ([`init`] must have run; otherwise levels are
/// recorded but change nothing).
pub fn loggers() -> &'static Loggers {
    LOGGERS.get_or_init(|| Loggers {
        reload: None,
        state: Mutex::new(State {
            root: LoggerLevel {
                level: "INFO".to_owned(),
                last_modified: None,
            },
            set: BTreeMap::new(),
        }),
    })
}

/// Kafka Connect's (log4j's) level names, as tracing's.
fn tracing_level(level: &str) -> Option<&'static str> {
    Some(match level.to_ascii_uppercase().as_str() {
        "OFF" => "off",
        "FATAL" | "ERROR" => "error",
        "WARN" => "warn",
        "INFO" => "info",
        "DEBUG" => "debug",
        "TRACE" => "trace",
        _ => return None,
    })
}

/// The Weir modules a logger name stands for; empty if it names none.
fn modules(name: &str) -> Vec<String> {
    if let Some((_, mapped)) = KAFKA_CONNECT_NAMES.iter().find(|(n, _)| *n == name) {
        return mapped.iter().map(|m| (*m).to_owned()).collect();
    }
    if WEIR_MODULES
        .iter()
        .any(|m| *m == name || m.starts_with(&format!("{name}::")))
    {
        return vec![name.to_owned()];
    }
    Vec::new()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Loggers {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `root` and every logger whose level was set explicitly.
    pub fn all(&self) -> BTreeMap<String, LoggerLevel> {
        let state = self.state();
        let mut all = state.set.clone();
        all.insert("root".to_owned(), state.root.clone());
        all
    }

    /// The level of one logger: set on it, or inherited; `None` if the name
    /// is neither `root`, a Weir module nor a mapped Kafka Connect name.
    pub fn get(&self, name: &str) -> Option<LoggerLevel> {
        let state = self.state();
        if name == "root" {
            return Some(state.root.clone());
        }
        if let Some(set) = state.set.get(name) {
            return Some(set.clone());
        }
        if modules(name).is_empty() {
            return None;
        }
        // Inherited from the nearest set parent, else root.
        let mut parent = name;
        while let Some((up, _)) = parent.rsplit_once("::").or_else(|| parent.rsplit_once('.')) {
            if let Some(set) = state.set.get(up) {
                return Some(LoggerLevel {
                    level: set.level.clone(),
                    last_modified: None,
                });
            }
            parent = up;
        }
        Some(LoggerLevel {
            level: state.root.level.clone(),
            last_modified: None,
        })
    }

    /// Sets a logger's level now, for this process. Returns the loggers
    /// affected (the name itself, and the Weir modules it maps to).
    pub fn set(&self, name: &str, level: &str) -> Result<Vec<String>, LevelError> {
        if tracing_level(level).is_none() {
            return Err(LevelError::InvalidLevel(level.to_owned()));
        }
        let level = level.to_ascii_uppercase();
        let mut state = self.state();
        let stamped = LoggerLevel {
            level,
            last_modified: Some(now_ms()),
        };
        let mut affected = vec![name.to_owned()];
        if name == "root" {
            state.root = stamped;
        } else {
            state.set.insert(name.to_owned(), stamped);
            affected.extend(modules(name).into_iter().filter(|m| m != name));
        }
        self.apply(&state);
        affected.sort();
        affected.dedup();
        Ok(affected)
    }

    /// Rebuilds the filter: root first, then every set logger's modules,
    /// broader names before narrower ones so the narrower win.
    fn apply(&self, state: &State) {
        let Some(reload) = &self.reload else {
            return;
        };
        let mut directives = vec![
            tracing_level(&state.root.level)
                .unwrap_or("info")
                .to_owned(),
        ];
        let mut targets: Vec<(usize, String, &'static str)> = state
            .set
            .iter()
            .flat_map(|(name, set)| {
                let level = tracing_level(&set.level).unwrap_or("info");
                modules(name)
                    .into_iter()
                    .map(move |module| (module.matches("::").count(), module, level))
            })
            .collect();
        targets.sort();
        directives.extend(targets.into_iter().map(|(_, m, l)| format!("{m}={l}")));
        if let Ok(filter) = EnvFilter::try_new(directives.join(",")) {
            let _ = reload.reload(filter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Loggers {
        Loggers {
            reload: None,
            state: Mutex::new(State {
                root: LoggerLevel {
                    level: "INFO".into(),
                    last_modified: None,
                },
                set: BTreeMap::new(),
            }),
        }
    }

    #[test]
    fn levels_are_set_inherited_and_mapped_from_kafka_connect_names() {
        let loggers = fresh();
        assert_eq!(
            loggers.get("weir_runner::sink").map(|l| l.level),
            Some("INFO".into())
        );
        assert!(loggers.get("com.example.Nothing").is_none());
        let affected = loggers
            .set("org.apache.kafka.connect.runtime.WorkerSinkTask", "debug")
            .unwrap_or_default();
        assert_eq!(
            affected,
            [
                "org.apache.kafka.connect.runtime.WorkerSinkTask",
                "weir_runner::sink"
            ]
        );
        loggers.set("weir_runner", "WARN").unwrap_or_default();
        assert_eq!(
            loggers.get("weir_runner::worker").map(|l| l.level),
            Some("WARN".into())
        );
        assert_eq!(
            loggers.set("weir_runner", "LOUD"),
            Err(LevelError::InvalidLevel("LOUD".into()))
        );
        let all = loggers.all();
        assert_eq!(all["root"].last_modified, None);
        assert_eq!(all["weir_runner"].level, "WARN");
        assert!(all["weir_runner"].last_modified.is_some());
    }
}
