//! The state key layout, in one place. Every key is relative to the store's
//! root prefix (`/weir/` by default in etcd). Values are JSON.
//!
//! | key | value | written by |
//! |---|---|---|
//! | `connectors/{name}/config` | connector config, `{"k":"v"}` | admin |
//! | `connectors/{name}/target` | `{"state":"RUNNING"\|"PAUSED"\|"STOPPED"}` | admin |
//! | `connectors/{name}/generation` | a number, bumped by config writes, connector restarts, and entering or leaving STOPPED | admin |
//! | `tasks/{name}` | `{"generation":n,"configs":[{…},…]}`: full task configs | coordinator serving the runner that hosts the connector instance (admin writes the empty set on STOPPED) |
//! | `restarts/{name}/{task}` | restart generation, a number | admin |
//! | `status/connectors/{name}` | `{"state","worker_id","trace"}` | coordinator serving the connector instance's runner; admin (STOPPED, RESTARTING); leader (UNASSIGNED) |
//! | `status/tasks/{name}/{task}` | `{"state","worker_id","trace","epoch"}` | coordinator serving the runner, leader |
//! | `topics/{name}/{topic}` | `{}` (active topics, KIP-558) | coordinator serving the runner |
//! | `offsets/{name}` | `[{"partition":{…},"offset":{…}}]`, last committed offsets reported | coordinator serving the runner |
//! | `runners/{id}` | `{"runner_id","coordinator_id","session"}`, under the coordinator's lease | coordinator serving the runner |
//! | `plugins/{runner}` | protobuf `weir.control.v1.PluginList`, under the coordinator's lease | coordinator serving the runner |
//! | `loggers/{name}` | `{"logger","level","last_modified"}`: a level set with `scope=cluster` | admin |
//! | `departed/{runner}` | `{"graceful":bool}`: how the runner's last session ended | coordinator that served it (deleted when it rejoins, or by the leader) |
//! | `applied/{runner}` | `{"epoch":n,"tasks":[{"connector","task"}]}`: what the runner runs after its last applied assignment | coordinator serving the runner (deleted by the leader) |
//! | `assignments/{runner}` | `{"epoch":n,"tasks":[{"connector","task"}],"connectors":["name"]}` | leader |
//! | `epoch` | last assignment epoch, a number | leader |
//! | `leader` | `{"coordinator_id"}`, under the leader's lease | election |
//!
//! Connector names are percent-encoded in keys so `/` in a name cannot
//! escape its prefix.

pub const CONNECTORS: &str = "connectors/";
pub const TASKS: &str = "tasks/";
pub const RESTARTS: &str = "restarts/";
pub const STATUS_CONNECTORS: &str = "status/connectors/";
pub const STATUS_TASKS: &str = "status/tasks/";
pub const TOPICS: &str = "topics/";
pub const OFFSETS: &str = "offsets/";
pub const RUNNERS: &str = "runners/";
pub const PLUGINS: &str = "plugins/";
pub const DEPARTED: &str = "departed/";
pub const LOGGERS: &str = "loggers/";
pub const APPLIED: &str = "applied/";
pub const ASSIGNMENTS: &str = "assignments/";
pub const CLAIMS: &str = "claims/";
pub const EPOCH: &str = "epoch";
pub const LEADER: &str = "leader";

/// Encodes a name for use as one key segment.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Decodes a segment written by [`encode`].
pub fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(decoded) = segment
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(decoded);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn connector_prefix(name: &str) -> String {
    format!("{CONNECTORS}{}/", encode(name))
}

pub fn connector_config(name: &str) -> String {
    format!("{}config", connector_prefix(name))
}

pub fn connector_target(name: &str) -> String {
    format!("{}target", connector_prefix(name))
}

pub fn connector_generation(name: &str) -> String {
    format!("{}generation", connector_prefix(name))
}

pub fn task_configs(name: &str) -> String {
    format!("{TASKS}{}", encode(name))
}

pub fn restarts_prefix(name: &str) -> String {
    format!("{RESTARTS}{}/", encode(name))
}

pub fn task_restart(name: &str, task: i32) -> String {
    format!("{}{task}", restarts_prefix(name))
}

pub fn connector_status(name: &str) -> String {
    format!("{STATUS_CONNECTORS}{}", encode(name))
}

pub fn task_status_prefix(name: &str) -> String {
    format!("{STATUS_TASKS}{}/", encode(name))
}

pub fn task_status(name: &str, task: i32) -> String {
    format!("{}{task}", task_status_prefix(name))
}

pub fn topics_prefix(name: &str) -> String {
    format!("{TOPICS}{}/", encode(name))
}

pub fn topic(name: &str, topic: &str) -> String {
    format!("{}{}", topics_prefix(name), encode(topic))
}

pub fn offsets(name: &str) -> String {
    format!("{OFFSETS}{}", encode(name))
}

pub fn runner(id: &str) -> String {
    format!("{RUNNERS}{}", encode(id))
}

pub fn plugins(runner: &str) -> String {
    format!("{PLUGINS}{}", encode(runner))
}

pub fn logger(name: &str) -> String {
    format!("{LOGGERS}{}", encode(name))
}

pub fn departed(runner: &str) -> String {
    format!("{DEPARTED}{}", encode(runner))
}

pub fn applied(runner: &str) -> String {
    format!("{APPLIED}{}", encode(runner))
}

pub fn claims(name: &str) -> String {
    format!("{CLAIMS}{}", encode(name))
}

pub fn assignment(runner: &str) -> String {
    format!("{ASSIGNMENTS}{}", encode(runner))
}

/// The connector name of a `connectors/{name}/config` key.
/// The connector and field (`config`, `target`, `generation`) of a key
/// under `connectors/`.
pub fn connector_field_of_key(key: &str) -> Option<(String, &str)> {
    let (name, field) = key.strip_prefix(CONNECTORS)?.split_once('/')?;
    Some((decode(name), field))
}

/// The connector whose task configs a key under `tasks/` holds.
pub fn connector_name_of_task_configs_key(key: &str) -> Option<String> {
    let name = key.strip_prefix(TASKS)?;
    (!name.contains('/')).then(|| decode(name))
}

/// The connector whose status a key under `status/connectors/` holds.
pub fn connector_name_of_status_key(key: &str) -> Option<String> {
    let name = key.strip_prefix(STATUS_CONNECTORS)?;
    (!name.contains('/')).then(|| decode(name))
}

/// The connector and task whose status a key under `status/tasks/` holds.
pub fn task_of_status_key(key: &str) -> Option<(String, i32)> {
    let (name, task) = key.strip_prefix(STATUS_TASKS)?.split_once('/')?;
    Some((decode(name), task.parse().ok()?))
}

pub fn connector_name_of_config_key(key: &str) -> Option<String> {
    key.strip_prefix(CONNECTORS)?
        .strip_suffix("/config")
        .map(decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_keys_name_their_connector_and_task() {
        for name in ["plain", "with/slash", "ünï", "%41"] {
            assert_eq!(
                connector_field_of_key(&connector_config(name)),
                Some((name.to_owned(), "config"))
            );
            assert_eq!(
                connector_field_of_key(&connector_generation(name)),
                Some((name.to_owned(), "generation"))
            );
            assert_eq!(
                connector_name_of_task_configs_key(&task_configs(name)),
                Some(name.to_owned())
            );
            assert_eq!(
                connector_name_of_status_key(&connector_status(name)),
                Some(name.to_owned())
            );
            assert_eq!(
                task_of_status_key(&task_status(name, 7)),
                Some((name.to_owned(), 7))
            );
        }
        assert_eq!(task_of_status_key("status/tasks/c/x"), None);
    }

    #[test]
    fn names_round_trip_and_cannot_escape_their_prefix() {
        for name in ["plain", "with/slash", "spaced name", "ünï", "%41"] {
            let encoded = encode(name);
            assert!(!encoded.contains('/'));
            assert_eq!(decode(&encoded), name);
        }
        assert_eq!(
            connector_name_of_config_key(&connector_config("a/b")),
            Some("a/b".to_owned())
        );
    }
}
