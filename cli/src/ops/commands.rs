//! The operator subcommands and what each sends and prints.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use super::apply::{self, Outcome};
use super::output::{self, Format, table};
use super::rest::{OpsError, Rest, Result, segment};

/// Which cluster, and how to print.
pub struct Target {
    pub rest: Rest,
    pub format: Format,
}

#[derive(Subcommand)]
pub enum ConnectorsCommand {
    /// Connectors with their state and their tasks' states.
    List,
    /// A connector's config, tasks and status.
    Describe {
        name: String,
    },
    /// The status of a connector and each of its tasks, with FAILED traces.
    Status {
        name: String,
    },
    /// Creates a connector from a JSON or .properties file.
    Create {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Creates or updates the connectors of a file or directory, reporting what changed.
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    Stop {
        name: String,
    },
    Restart {
        name: String,
        /// Restart the tasks too.
        #[arg(long)]
        include_tasks: bool,
        /// Only what is FAILED.
        #[arg(long)]
        only_failed: bool,
    },
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum OffsetsCommand {
    /// A connector's committed offsets.
    Get { name: String },
    /// Resets a STOPPED connector's offsets.
    Reset { name: String },
    /// Alters a STOPPED connector's offsets from a file (Kafka Connect's `{"offsets":[…]}`).
    Alter {
        name: String,
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
}

fn path(name: &str, rest: &str) -> String {
    format!("/connectors/{}{rest}", segment(name))
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The first line of a trace: tables stay one line per task.
fn first_line(trace: &Value) -> String {
    text(trace).lines().next().unwrap_or_default().to_owned()
}

/// Prints a message for the table format, or `{"message": …}` otherwise.
fn done(target: &Target, message: String) {
    output::print(target.format, &json!({ "message": message }), || message);
}

fn status_rows(status: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "connector".to_owned(),
        text(&status["connector"]["state"]),
        text(&status["connector"]["worker_id"]),
        first_line(&status["connector"]["trace"]),
    ]];
    for task in status["tasks"].as_array().into_iter().flatten() {
        rows.push(vec![
            format!("task {}", text(&task["id"])),
            text(&task["state"]),
            text(&task["worker_id"]),
            first_line(&task["trace"]),
        ]);
    }
    rows
}

pub fn connectors(target: &Target, command: ConnectorsCommand) -> Result<()> {
    let rest = &target.rest;
    match command {
        ConnectorsCommand::List => {
            let listing = rest.get("/connectors?expand=status")?;
            output::print(target.format, &listing, || {
                let rows: Vec<Vec<String>> = listing
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, entry)| {
                        let status = &entry["status"];
                        let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
                        let running = tasks.iter().filter(|t| t["state"] == "RUNNING").count();
                        vec![
                            name.clone(),
                            text(&status["type"]),
                            text(&status["connector"]["state"]),
                            format!("{running}/{} RUNNING", tasks.len()),
                            text(&status["connector"]["worker_id"]),
                        ]
                    })
                    .collect();
                table(&["NAME", "TYPE", "STATE", "TASKS", "WORKER"], &rows)
            });
        }
        ConnectorsCommand::Describe { name } => {
            let info = rest.get(&path(&name, ""))?;
            let status = rest.get(&path(&name, "/status"))?;
            let described = json!({"name": info["name"], "type": info["type"],
                "config": info["config"], "tasks": info["tasks"], "status": status});
            output::print(target.format, &described, || {
                let config: Vec<Vec<String>> = info["config"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(key, value)| vec![key.clone(), text(value)])
                    .collect();
                format!(
                    "Name: {}\nType: {}\n\n{}\n\n{}",
                    text(&info["name"]),
                    text(&info["type"]),
                    table(&["KEY", "VALUE"], &config),
                    table(&["WHAT", "STATE", "WORKER", "TRACE"], &status_rows(&status))
                )
            });
        }
        ConnectorsCommand::Status { name } => {
            let status = rest.get(&path(&name, "/status"))?;
            output::print(target.format, &status, || {
                table(&["WHAT", "STATE", "WORKER", "TRACE"], &status_rows(&status))
            });
        }
        ConnectorsCommand::Create { file } => {
            let desired = apply::read(&file)?;
            let body = json!({"name": desired.name, "config": desired.config});
            let (_, created) = rest.call("POST", "/connectors", Some(&body))?;
            output::print(target.format, &created, || {
                format!("connector {} created", desired.name)
            });
        }
        ConnectorsCommand::Apply { file } => {
            let mut report = Vec::new();
            for desired in apply::read_all(&file)? {
                let outcome = apply::apply(rest, &desired)?;
                let (action, changed) = match outcome {
                    Outcome::Created => ("created", Vec::new()),
                    Outcome::Updated(changed) => ("updated", changed),
                    Outcome::Unchanged => ("unchanged", Vec::new()),
                };
                report.push(
                    json!({"name": desired.name, "file": desired.file.display().to_string(),
                    "action": action, "changed": changed}),
                );
            }
            let value = Value::Array(report);
            output::print(target.format, &value, || {
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|entry| {
                        let changed: Vec<String> = entry["changed"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(text)
                            .collect();
                        if changed.is_empty() {
                            format!(
                                "connector {} {}",
                                text(&entry["name"]),
                                text(&entry["action"])
                            )
                        } else {
                            format!(
                                "connector {} updated ({})",
                                text(&entry["name"]),
                                changed.join(", ")
                            )
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ConnectorsCommand::Pause { name } => {
            rest.call("PUT", &path(&name, "/pause"), None)?;
            done(target, format!("connector {name} pausing"));
        }
        ConnectorsCommand::Resume { name } => {
            rest.call("PUT", &path(&name, "/resume"), None)?;
            done(target, format!("connector {name} resuming"));
        }
        ConnectorsCommand::Stop { name } => {
            rest.call("PUT", &path(&name, "/stop"), None)?;
            done(target, format!("connector {name} stopping"));
        }
        ConnectorsCommand::Restart {
            name,
            include_tasks,
            only_failed,
        } => {
            let query = format!("/restart?includeTasks={include_tasks}&onlyFailed={only_failed}");
            let (_, body) = rest.call("POST", &path(&name, &query), None)?;
            if body.is_null() {
                done(target, format!("connector {name} restarted"));
            } else {
                output::print(target.format, &body, || {
                    table(&["WHAT", "STATE", "WORKER", "TRACE"], &status_rows(&body))
                });
            }
        }
        ConnectorsCommand::Delete { name } => {
            rest.call("DELETE", &path(&name, ""), None)?;
            done(target, format!("connector {name} deleted"));
        }
    }
    Ok(())
}

pub fn offsets(target: &Target, command: OffsetsCommand) -> Result<()> {
    let rest = &target.rest;
    match command {
        OffsetsCommand::Get { name } => {
            let offsets = rest.get(&path(&name, "/offsets"))?;
            output::print(target.format, &offsets, || {
                let rows: Vec<Vec<String>> = offsets["offsets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|entry| vec![entry["partition"].to_string(), entry["offset"].to_string()])
                    .collect();
                table(&["PARTITION", "OFFSET"], &rows)
            });
        }
        OffsetsCommand::Reset { name } => {
            let (_, body) = rest.call("DELETE", &path(&name, "/offsets"), None)?;
            done(target, text(&body["message"]));
        }
        OffsetsCommand::Alter { name, file } => {
            let body: Value = std::fs::read_to_string(&file)
                .map_err(|e| OpsError::Input(format!("{}: {e}", file.display())))
                .and_then(|text| {
                    serde_json::from_str(&text)
                        .map_err(|e| OpsError::Input(format!("{}: not JSON: {e}", file.display())))
                })?;
            let (_, reply) = rest.call("PATCH", &path(&name, "/offsets"), Some(&body))?;
            done(target, text(&reply["message"]));
        }
    }
    Ok(())
}

pub fn plugins(target: &Target, all: bool) -> Result<()> {
    let query = if all { "?connectorsOnly=false" } else { "" };
    let plugins = target.rest.get(&format!("/connector-plugins{query}"))?;
    output::print(target.format, &plugins, || {
        let rows: Vec<Vec<String>> = plugins
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| vec![text(&p["class"]), text(&p["type"]), text(&p["version"])])
            .collect();
        table(&["CLASS", "TYPE", "VERSION"], &rows)
    });
    Ok(())
}

pub fn tasks(target: &Target, name: &str) -> Result<()> {
    let tasks = target.rest.get(&path(name, "/tasks"))?;
    let status = target.rest.get(&path(name, "/status"))?;
    output::print(target.format, &tasks, || {
        let rows: Vec<Vec<String>> = tasks
            .as_array()
            .into_iter()
            .flatten()
            .map(|task| {
                let id = &task["id"]["task"];
                let state = status["tasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["id"] == *id);
                vec![
                    text(id),
                    state.map(|s| text(&s["state"])).unwrap_or_default(),
                    state.map(|s| text(&s["worker_id"])).unwrap_or_default(),
                    task["config"]
                        .as_object()
                        .map_or(0, |c| c.len())
                        .to_string(),
                ]
            })
            .collect();
        table(&["TASK", "STATE", "WORKER", "CONFIG KEYS"], &rows)
    });
    Ok(())
}

/// Weir's `GET /runners`; a Kafka Connect cluster has no such endpoint.
pub fn runners(target: &Target) -> Result<()> {
    let runners = match target.rest.get("/runners") {
        Err(OpsError::Refused { status: 404, .. }) => {
            return Err(OpsError::Refused {
                status: 404,
                message:
                    "this cluster has no runners endpoint: `weir runners` needs a Weir cluster"
                        .into(),
            });
        }
        other => other?,
    };
    output::print(target.format, &runners, || {
        let rows: Vec<Vec<String>> = runners
            .as_array()
            .into_iter()
            .flatten()
            .map(|runner| {
                let list = |field: &str| {
                    runner[field]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect::<Vec<_>>()
                        .join(",")
                };
                vec![
                    text(&runner["id"]),
                    text(&runner["coordinator"]),
                    list("connectors"),
                    list("tasks"),
                ]
            })
            .collect();
        table(&["RUNNER", "COORDINATOR", "CONNECTORS", "TASKS"], &rows)
    });
    Ok(())
}

/// Where `weir tap` copies records, and how many.
pub struct TapOptions {
    pub task: Option<i32>,
    pub point: String,
    pub rate: Option<u32>,
    /// Stop after this many records.
    pub limit: Option<u64>,
}

/// Weir's live tap (`GET /connectors/{name}/tap`): prints records as they
/// pass, one line each (or one JSON document per line with `-o json`).
pub fn tap(target: &Target, name: &str, options: &TapOptions) -> Result<()> {
    let mut path = format!(
        "/connectors/{}/tap?point={}",
        segment(name),
        segment(&options.point)
    );
    if let Some(task) = options.task {
        path.push_str(&format!("&task={task}"));
    }
    if let Some(rate) = options.rate {
        path.push_str(&format!("&rate={rate}"));
    }
    let mut printed = 0u64;
    if options.limit == Some(0) {
        return Ok(());
    }
    let mut ended = None;
    let outcome = target.rest.events(
        &path,
        || eprintln!("tapping {name} at {} (Ctrl-C to stop)", options.point),
        |event, data| {
            if event == "ended" {
                ended = Some(data.to_owned());
                return false;
            }
            if event != "record" {
                return true;
            }
            let Ok(record) = serde_json::from_str::<Value>(data) else {
                return true;
            };
            match target.format {
                Format::Json => println!("{record}"),
                Format::Yaml => print!("---\n{}", output::yaml(&record)),
                Format::Table => println!("{}", tap_line(&record)),
            }
            printed += 1;
            options.limit.is_none_or(|limit| printed < limit)
        },
    );
    if let Some(reason) = ended {
        return Err(OpsError::Unreachable {
            url: target.rest.base().to_owned(),
            reason: format!("the tap ended: {reason}"),
        });
    }
    match outcome {
        Err(OpsError::Refused {
            status: 404,
            message,
        }) if message.contains("HTTP 404") || message.is_empty() => Err(OpsError::Refused {
            status: 404,
            message: "this cluster has no tap endpoint: `weir tap` needs a Weir cluster".into(),
        }),
        other => other,
    }
}

/// One tapped record as a line: where it was, then key and value as JSON.
fn tap_line(record: &Value) -> String {
    let mut line = String::new();
    let skipped = record["skipped_before"].as_u64().unwrap_or(0);
    if skipped > 0 {
        line.push_str(&format!("({skipped} records not shown) "));
    }
    line.push_str(&format!(
        "task {} {}",
        record["task"],
        text(&record["topic"])
    ));
    if let Some(partition) = record["partition"].as_i64() {
        line.push_str(&format!("[{partition}]"));
    }
    if let Some(offset) = record["offset"].as_i64() {
        line.push_str(&format!("@{offset}"));
    }
    line.push_str(&format!(" key={} value={}", record["key"], record["value"]));
    line
}
