//! Kafka Connect's REST API (port 8083) on axum. Every handler translates
//! the HTTP request into one call of the admin service — the same code the
//! gRPC `Admin` service runs — and its reply or `Status` back into Kafka
//! Connect's JSON bodies, status codes and `{"error_code","message"}` errors.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Map, Value, json};
use tonic::{Code, Request};
use weir_proto::admin::v1 as pb;
use weir_proto::admin::v1::admin_server::Admin;

use crate::admin::AdminService;
/// Where callers (`weir standalone`) have always found it.
pub use crate::startup::StartupProbe;

/// Renders Prometheus text for `GET /metrics`.
#[derive(Clone)]
pub struct MetricsSource(pub std::sync::Arc<dyn Fn() -> String + Send + Sync>);

impl std::fmt::Debug for MetricsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSource")
    }
}

/// Everything a coordinator serves on its REST port: the REST router, the
/// web console at `/ui`, and `GET /metrics`: the cluster as the store shows
/// it, then `extra` (standalone: its runner's task metrics).
pub fn router_with_metrics(admin: AdminService, extra: Option<MetricsSource>) -> Router {
    let metrics_admin = admin.clone();
    router(admin).merge(crate::console::routes()).route(
        "/metrics",
        get(move || {
            let admin = metrics_admin.clone();
            let extra = extra.clone();
            async move {
                match admin.cluster_metrics().await {
                    Ok(mut text) => {
                        if let Some(extra) = &extra {
                            text.push_str(&(extra.0)());
                        }
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            text,
                        )
                            .into_response()
                    }
                    Err(failure) => {
                        error(StatusCode::SERVICE_UNAVAILABLE, &failure.to_string()).into_response()
                    }
                }
            }
        }),
    )
}

/// The REST router over an admin service.
pub fn router(admin: AdminService) -> Router {
    Router::new()
        .route("/", get(server_info))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_document))
        .route("/connectors", get(list_connectors).post(create_connector))
        .route(
            "/connectors/{name}",
            get(get_connector).delete(delete_connector),
        )
        .route(
            "/connectors/{name}/config",
            get(get_config).put(put_config).patch(patch_config),
        )
        .route("/connectors/{name}/status", get(get_status))
        .route("/connectors/{name}/restart", post(restart_connector))
        .route("/connectors/{name}/pause", put(pause_connector))
        .route("/connectors/{name}/resume", put(resume_connector))
        .route("/connectors/{name}/stop", put(stop_connector))
        .route("/connectors/{name}/tasks", get(list_tasks))
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(restart_task),
        )
        .route("/connectors/{name}/topics", get(connector_topics))
        .route("/connectors/{name}/tap", get(tap_connector))
        .route(
            "/connectors/{name}/offsets",
            get(connector_offsets)
                .patch(alter_offsets)
                .delete(reset_offsets),
        )
        .route("/connector-plugins", get(list_plugins))
        .route("/runners", get(list_runners))
        .route("/admin/loggers", get(list_loggers))
        .route("/admin/loggers/{name}", get(get_logger).put(set_logger))
        .route("/connector-plugins/{plugin}/config", get(plugin_config))
        .route(
            "/connector-plugins/{plugin}/config/validate",
            put(validate_config),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "HTTP 404 Not Found") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "HTTP 405 Method Not Allowed",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(json_body_limit))
        .with_state(admin)
}

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The body-size refusal comes from axum as plain text; give it Kafka
/// Connect's JSON error shape.
async fn json_body_limit(response: Response) -> Response {
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("Request entity too large: the limit is {MAX_BODY_BYTES} bytes"),
    )
    .into_response()
}

/// An HTTP error, rendered as Kafka Connect's `{"error_code","message"}` body.
#[derive(Debug)]
pub struct RestError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.status.as_u16(), "message": self.message});
        (self.status, axum::Json(body)).into_response()
    }
}

fn error(status: StatusCode, message: &str) -> RestError {
    RestError {
        status,
        message: message.to_owned(),
    }
}

/// The one mapping from gRPC codes to HTTP statuses.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn from_status(status: tonic::Status) -> RestError {
    error(http_status(status.code()), status.message())
}

fn ok(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

type HttpResult = Result<Response, RestError>;

/// Parses a JSON body. Like Kafka Connect (Jackson behind Jersey), a body
/// that cannot be read is a 500 with the parser's message.
fn parse_body(body: &Bytes) -> Result<Value, RestError> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Cannot deserialize request body: {e}"),
        )
    })
}

/// A flat `{"k":"v"}` config. Numbers and booleans are taken as their text
/// (as Jackson coerces them); nulls are dropped; nested values are refused.
fn config_map(value: &Value) -> Result<BTreeMap<String, String>, RestError> {
    let Value::Object(object) = value else {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "Cannot deserialize value of type `java.util.HashMap<java.lang.String,java.lang.String>` from {}",
                json_kind(value)
            ),
        ));
    };
    let mut config = BTreeMap::new();
    for (key, value) in object {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            other => {
                return Err(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!(
                        "Cannot deserialize value of type `java.lang.String` from {} (config key \"{key}\")",
                        json_kind(other)
                    ),
                ));
            }
        };
        config.insert(key.clone(), text);
    }
    Ok(config)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "Object value",
        Value::Array(_) => "Array value",
        Value::String(_) => "String value",
        Value::Number(_) => "Number value",
        Value::Bool(_) => "Boolean value",
        Value::Null => "null value",
    }
}

fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// A query-string component: `+` is a space, `%XX` an escaped byte.
fn percent_decode(text: &str) -> String {
    crate::keys::decode(&text.replace('+', " "))
}

/// A boolean query parameter; absent or unparsable means `default`.
fn query_flag(pairs: &[(String, String)], name: &str, default: bool) -> bool {
    pairs
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .map_or(default, |(_, value)| value.eq_ignore_ascii_case("true"))
}

fn type_name(connector_type: i32) -> &'static str {
    match pb::ConnectorType::try_from(connector_type) {
        Ok(pb::ConnectorType::Source) => "source",
        Ok(pb::ConnectorType::Sink) => "sink",
        _ => "unknown",
    }
}

fn state_name(state: i32) -> &'static str {
    pb::State::try_from(state)
        .map(|s| match s {
            pb::State::Unassigned => "UNASSIGNED",
            pb::State::Running => "RUNNING",
            pb::State::Paused => "PAUSED",
            pb::State::Failed => "FAILED",
            pb::State::Restarting => "RESTARTING",
            pb::State::Stopped => "STOPPED",
        })
        .unwrap_or("UNASSIGNED")
}

fn config_json(config: &std::collections::HashMap<String, String>) -> Value {
    let sorted: BTreeMap<&String, &String> = config.iter().collect();
    json!(sorted)
}

fn info_json(info: &pb::ConnectorInfo) -> Value {
    json!({
        "name": info.name,
        "config": config_json(&info.config),
        "tasks": info.tasks.iter().map(|t| json!({"connector": t.connector, "task": t.task})).collect::<Vec<_>>(),
        "type": type_name(info.r#type),
    })
}

/// A connector's or task's state as Kafka Connect shows it. The status
/// bodies are serialized straight from the admin reply: `GET
/// /connectors?expand=status` at 1,000 connectors is hundreds of kilobytes,
/// and building it as a `Value` tree first cost more than reading it.
#[derive(serde::Serialize)]
struct InstanceBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i32>,
    state: &'static str,
    worker_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    trace: &'a str,
}

impl<'a> InstanceBody<'a> {
    fn of(status: Option<&'a pb::InstanceStatus>, id: Option<i32>) -> Self {
        match status {
            Some(status) => InstanceBody {
                id,
                state: state_name(status.state),
                worker_id: &status.worker_id,
                trace: &status.trace,
            },
            None => InstanceBody {
                id,
                state: state_name(0),
                worker_id: "",
                trace: "",
            },
        }
    }
}

#[derive(serde::Serialize)]
struct StatusBody<'a> {
    name: &'a str,
    connector: InstanceBody<'a>,
    tasks: Vec<InstanceBody<'a>>,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<'a> StatusBody<'a> {
    fn of(status: &'a pb::ConnectorStatus) -> Self {
        StatusBody {
            name: &status.name,
            connector: InstanceBody::of(status.connector.as_ref(), None),
            tasks: status
                .tasks
                .iter()
                .map(|t| InstanceBody::of(t.status.as_ref(), Some(t.id)))
                .collect(),
            kind: type_name(status.r#type),
        }
    }
}

/// One connector of `GET /connectors?expand=…`.
#[derive(serde::Serialize)]
struct ExpandedBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<Value>,
}

/// The expanded connectors by name, in the reply's order.
struct ExpandedListing<'a>(Vec<(&'a str, ExpandedBody<'a>)>);

impl serde::Serialize for ExpandedListing<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, body)| (name, body)))
    }
}

fn ok_serialized(status: StatusCode, body: impl serde::Serialize) -> Response {
    (status, axum::Json(body)).into_response()
}

fn connector_ref(name: String) -> Request<pb::ConnectorRef> {
    Request::new(pb::ConnectorRef { name })
}

fn task_ref(name: String, task: &str) -> Result<Request<pb::TaskRef>, RestError> {
    let task = task
        .parse()
        .map_err(|_| error(StatusCode::NOT_FOUND, "HTTP 404 Not Found"))?;
    Ok(Request::new(pb::TaskRef {
        connector: name,
        task,
    }))
}

fn created(name: &str, body: Value) -> Response {
    let mut response = ok(StatusCode::CREATED, body);
    let location = format!(
        "/connectors/{}",
        name.replace('%', "%25")
            .replace(' ', "%20")
            .replace('/', "%2F")
    );
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn openapi_document() -> Response {
    ok(StatusCode::OK, crate::openapi::document())
}

async fn server_info(State(admin): State<AdminService>) -> HttpResult {
    let info = admin
        .server_info(Request::new(pb::ServerInfoRequest {}))
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(ok(
        StatusCode::OK,
        json!({"version": info.version, "commit": info.commit, "kafka_cluster_id": info.kafka_cluster_id}),
    ))
}

/// KIP-1017. A coordinator serves REST only once its store is reachable, so
/// it is never "starting" here; it is unhealthy (500) while it cannot be
/// sure its etcd session is alive, since its answers may then be stale.
async fn health(State(admin): State<AdminService>) -> Response {
    if !admin.started() {
        ok(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "starting", "message": "Worker is still starting up."}),
        )
    } else if admin.session_valid() {
        ok(
            StatusCode::OK,
            json!({"status": "healthy", "message": "Worker has completed startup and is ready to handle requests."}),
        )
    } else {
        ok(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"status": "unhealthy", "message": "The coordinator cannot confirm its session with the state store (etcd); its view of the cluster may be stale."}),
        )
    }
}

async fn list_connectors(
    State(admin): State<AdminService>,
    RawQuery(query): RawQuery,
) -> HttpResult {
    let pairs = query_pairs(&query);
    let expands = |what: &str| pairs.iter().any(|(k, v)| k == "expand" && v == what);
    let request = pb::ListConnectorsRequest {
        expand_status: expands("status"),
        expand_info: expands("info"),
    };
    let expanded = request.expand_status || request.expand_info;
    let reply = admin
        .list_connectors(Request::new(request))
        .await
        .map_err(from_status)?
        .into_inner();
    if !expanded {
        let names: Vec<&String> = reply.connectors.iter().map(|c| &c.name).collect();
        return Ok(ok(StatusCode::OK, json!(names)));
    }
    let listing = ExpandedListing(
        reply
            .connectors
            .iter()
            .map(|connector| {
                let body = ExpandedBody {
                    status: connector.status.as_ref().map(StatusBody::of),
                    info: connector.info.as_ref().map(info_json),
                };
                (connector.name.as_str(), body)
            })
            .collect(),
    );
    Ok(ok_serialized(StatusCode::OK, listing))
}

async fn create_connector(State(admin): State<AdminService>, body: Bytes) -> HttpResult {
    let body = parse_body(&body)?;
    let Value::Object(request) = &body else {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "Cannot construct instance of `CreateConnectorRequest` from {}",
                json_kind(&body)
            ),
        ));
    };
    let name = match request.get("name") {
        Some(Value::String(name)) => name.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let config = match request.get("config") {
        Some(Value::Null) | None => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Connector config must be provided in the \"config\" field",
            ));
        }
        Some(config) => config_map(config)?,
    };
    let initial_state = match request.get("initial_state") {
        Some(Value::Null) | None => None,
        Some(Value::String(state)) => Some(match state.to_ascii_uppercase().as_str() {
            "RUNNING" => pb::TargetState::Running as i32,
            "PAUSED" => pb::TargetState::Paused as i32,
            "STOPPED" => pb::TargetState::Stopped as i32,
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Invalid initial state {state}; must be one of RUNNING, PAUSED, STOPPED"
                    ),
                ));
            }
        }),
        Some(other) => {
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!(
                    "Cannot deserialize value of type `InitialState` from {}",
                    json_kind(other)
                ),
            ));
        }
    };
    let info = admin
        .create_connector(Request::new(pb::CreateConnectorRequest {
            name,
            config: config.into_iter().collect(),
            initial_state,
        }))
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(created(&info.name, info_json(&info)))
}

async fn get_connector(State(admin): State<AdminService>, Path(name): Path<String>) -> HttpResult {
    let info = admin
        .get_connector(connector_ref(name))
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(ok(StatusCode::OK, info_json(&info)))
}

async fn get_config(State(admin): State<AdminService>, Path(name): Path<String>) -> HttpResult {
    let config = admin
        .get_connector_config(connector_ref(name))
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(ok(StatusCode::OK, config_json(&config.config)))
}

async fn put_config(
    State(admin): State<AdminService>,
    Path(name): Path<String>,
    body: Bytes,
) -> HttpResult {
    let config = config_map(&parse_body(&body)?)?;
    let reply = admin
        .put_connector_config(Request::new(pb::PutConnectorConfigRequest {
            name: name.clone(),
            config: config.into_iter().collect(),
        }))
        .await
        .map_err(from_status)?
        .into_inner();
    let info = reply.info.unwrap_or_default();
    if reply.created {
        Ok(created(&name, info_json(&info)))
    } else {
        Ok(ok(StatusCode::OK, info_json(&info)))
    }
}

/// KIP-477: a partial config merged into the stored one; `null` deletes a key.
async fn patch_config(
    State(admin): State<AdminService>,
    Path(name): Path<String>,
    body: Bytes,
) -> HttpResult {
    let patch = parse_body(&body)?;
    let remove: Vec<String> = match &patch {
        Value::Object(object) => object
            .iter()
            .filter(|(_, value)| value.is_null())
            .map(|(key, _)| key.clone())
            .collect(),
        _ => Vec::new(),
    };
    let set = config_map(&patch)?;
    let info = admin
        .patch_connector_config(Request::new(pb::PatchConnectorConfigRequest {
            name,
            set: set.into_iter().collect(),
            remove,
        }))
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(ok(StatusCode::OK, info_json(&info)))
}

async fn get_status(State(admin): State<AdminService>, Path(name): Path<String>) -> HttpResult {
    let status = admin
        .get_connector_status(connector_ref(name))
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(ok_serialized(StatusCode::OK, StatusBody::of(&status)))
}

async fn restart_connector(
    State(admin): State<AdminService>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> HttpResult {
    let pairs = query_pairs(&query);
    let reply = admin
        .restart_connector(Request::new(pb::RestartConnectorRequest {
            name,
            include_tasks: query_flag(&pairs, "includeTasks", false),
            only_failed: query_flag(&pairs, "onlyFailed", false),
        }))
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(match reply.status {
        Some(status) => ok_serialized(StatusCode::ACCEPTED, StatusBody::of(&status)),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn pause_connector(
    State(admin): State<AdminService>,
    Path(name): Path<String>,
) -> HttpResult {
    admin
        .pause_connector(connector_ref(name))
        .await
        .map_err(from_status)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn resume_connector(
    State(admin): State<AdminService>,
    Path(name): Path<String>,
) -> HttpResult {
    admin
        .resume_connector(connector_ref(name))
        .await
        .map_err(from_status)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn stop_connector(State(admin): State<AdminService>, Path(name): Path<String>) -> HttpResult {
    admin
        .stop_connector(connector_ref(name))
        .await
        .map_err(from_status)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_connector(
    State(admin): State<AdminService>,
    Path(name): Path<String>,
) -> HttpResult {
    admin
        .delete_connector(connector_ref(name))
        .await
        .map_err(from_status)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_tasks(State(admin): State<AdminService>, Path(name): Path<String>) -> HttpResult {
    let tasks = admin
        .list_tasks(connector_ref(name))
        .await
        .map_err(from_status)?
        .into_inner();
    let body: Vec<Value> = tasks
        .tasks
        .iter()
        .map(|task| {
            let id = task.id.clone().unwrap_or_default();
            json!({"id": {"connector": id.connector, "task": id.task}, "config": config_json(&task.config)})
        })
        .collect();
    Ok(ok(StatusCode::OK, json!(body)))
}

async fn task_status(
    State(admin): State<AdminService>,
    Path((name, task)): Path<(String, String)>,
) -> HttpResult {
    let status = admin
        .get_task_status(task_ref(name, &task)?)
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(ok_serialized(
        StatusCode::OK,
        InstanceBody::of(status.status.as_ref(), Some(status.id)),
    ))
}

async fn restart_task(
    State(admin): State<AdminService>,
    Path((name, task)): Path<(String, String)>,
) -> HttpResult {
    admin
        .restart_task(task_ref(name, &task)?)
        .await
        .map_err(from_status)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn connector_topics(
    State(admin): State<AdminService>,
    Path(name): Path<String>,
) -> HttpResult {
    let topics = admin
        .get_connector_topics(connector_ref(name))
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(ok(
        StatusCode::OK,
        json!({ topics.name: {"topics": topics.topics} }),
    ))
}

async fn connector_offsets(
    State(admin): State<AdminService>,
    Path(name): Path<String>,
) -> HttpResult {
    let offsets = admin
        .get_connector_offsets(connector_ref(name))
        .await
        .map_err(from_status)?
        .into_inner();
    let entries: Vec<Value> = offsets
        .offsets
        .iter()
        .map(|entry| {
            let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
            json!({"partition": parse(&entry.partition_json), "offset": parse(&entry.offset_json)})
        })
        .collect();
    Ok(ok(StatusCode::OK, json!({"offsets": entries})))
}

/// KIP-875: `{"offsets":[{"partition":{…},"offset":{…}|null}]}`.
async fn alter_offsets(
    State(admin): State<AdminService>,
    Path(name): Path<String>,
    body: Bytes,
) -> HttpResult {
    let body = parse_body(&body)?;
    let offsets = body
        .get("offsets")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|entry| pb::ConnectorOffset {
                    partition_json: entry.get("partition").unwrap_or(&Value::Null).to_string(),
                    offset_json: match entry.get("offset") {
                        None | Some(Value::Null) => String::new(),
                        Some(offset) => offset.to_string(),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let reply = admin
        .alter_connector_offsets(Request::new(pb::AlterOffsetsRequest { name, offsets }))
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(ok(StatusCode::OK, json!({"message": reply.message})))
}

async fn reset_offsets(State(admin): State<AdminService>, Path(name): Path<String>) -> HttpResult {
    let reply = admin
        .reset_connector_offsets(connector_ref(name))
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(ok(StatusCode::OK, json!({"message": reply.message})))
}

async fn list_plugins(State(admin): State<AdminService>, RawQuery(query): RawQuery) -> HttpResult {
    let pairs = query_pairs(&query);
    let plugins = admin
        .list_plugins(Request::new(pb::ListPluginsRequest {
            connectors_only: query_flag(&pairs, "connectorsOnly", true),
        }))
        .await
        .map_err(from_status)?
        .into_inner();
    let body: Vec<Value> = plugins
        .plugins
        .iter()
        .map(|p| json!({"class": p.class, "type": p.r#type, "version": p.version}))
        .collect();
    Ok(ok(StatusCode::OK, json!(body)))
}

fn level_json(level: &pb::LoggerLevel) -> Value {
    json!({"level": level.level, "last_modified": level.last_modified})
}

async fn list_runners(State(admin): State<AdminService>) -> HttpResult {
    let runners = admin
        .list_runners(Request::new(pb::Empty {}))
        .await
        .map_err(from_status)?
        .into_inner()
        .runners;
    let body: Vec<Value> = runners
        .into_iter()
        .map(|runner| {
            json!({"id": runner.id, "coordinator": runner.coordinator_id,
                "connectors": runner.connectors, "tasks": runner.tasks})
        })
        .collect();
    Ok(ok(StatusCode::OK, Value::Array(body)))
}

/// Weir only: a live tap as Server-Sent Events, one `record` event per
/// record (JSON), after a comment saying the tap is attached, and an
/// `ended` event with the reason if the coordinator ends it. Query:
/// `task`, `point` (`after_poll`, `after_transforms`, `before_put`) and
/// `rate` (records per second per task).
async fn tap_connector(
    State(admin): State<AdminService>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> HttpResult {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;

    let mut request = pb::TapRequest {
        connector: name,
        ..Default::default()
    };
    for (key, value) in query_pairs(&query) {
        match key.as_str() {
            "task" => {
                let task = value.parse().map_err(|_| {
                    error(
                        StatusCode::BAD_REQUEST,
                        &format!("Invalid task {value:?}: expected a task number"),
                    )
                })?;
                request.task = Some(task);
            }
            "point" => {
                let point = crate::tap::parse_point(&value).ok_or_else(|| {
                    error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "Invalid tap point {value:?}: expected after_poll, after_transforms or before_put"
                        ),
                    )
                })?;
                request.set_point(point);
            }
            "rate" => {
                request.max_records_per_second = value.parse().map_err(|_| {
                    error(
                        StatusCode::BAD_REQUEST,
                        &format!("Invalid rate {value:?}: expected records per second"),
                    )
                })?;
            }
            _ => {}
        }
    }
    let records = admin
        .tap_connector(Request::new(request))
        .await
        .map_err(from_status)?
        .into_inner();
    let attached = futures::stream::once(async { Ok(Event::default().comment("tap attached")) });
    let events = records.map(|record| {
        Ok::<_, std::convert::Infallible>(match record {
            Ok(record) => Event::default()
                .event("record")
                .data(tapped_record_json(&record).to_string()),
            Err(status) => Event::default().event("ended").data(status.message()),
        })
    });
    Ok(Sse::new(attached.chain(events))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// A tapped record as REST shows it: key, value and headers as JSON.
fn tapped_record_json(record: &pb::TappedRecord) -> Value {
    let parse = |text: &str| {
        serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned()))
    };
    json!({
        "connector": record.connector,
        "task": record.task,
        "point": crate::tap::point_name(record.point()),
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "key": parse(&record.key_json),
        "value": parse(&record.value_json),
        "headers": record.headers.iter().map(|h| json!({"key": h.key, "value": parse(&h.value_json)})).collect::<Vec<_>>(),
        "skipped_before": record.skipped_before,
        "runner": record.runner,
    })
}

async fn list_loggers(State(admin): State<AdminService>) -> HttpResult {
    let loggers = admin
        .list_loggers(Request::new(pb::Empty {}))
        .await
        .map_err(from_status)?
        .into_inner()
        .loggers;
    let body: Map<String, Value> = loggers
        .iter()
        .map(|(name, level)| (name.clone(), level_json(level)))
        .collect();
    Ok(ok(StatusCode::OK, Value::Object(body)))
}

async fn get_logger(State(admin): State<AdminService>, Path(name): Path<String>) -> HttpResult {
    let level = admin
        .get_logger(Request::new(pb::LoggerRef { name }))
        .await
        .map_err(from_status)?
        .into_inner();
    Ok(ok(StatusCode::OK, level_json(&level)))
}

/// KIP-495/976: `scope=worker` (the default, and what an unknown scope
/// means) answers the affected loggers; `scope=cluster` answers 204.
async fn set_logger(
    State(admin): State<AdminService>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> HttpResult {
    let body = parse_body(&body)?;
    let level = body
        .get("level")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let cluster = query_pairs(&query)
        .iter()
        .any(|(key, value)| key == "scope" && value.eq_ignore_ascii_case("cluster"));
    let reply = admin
        .set_log_level(Request::new(pb::SetLogLevelRequest {
            name,
            level,
            cluster,
        }))
        .await
        .map_err(from_status)?
        .into_inner();
    if cluster {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(ok(StatusCode::OK, json!(reply.affected)))
}

async fn plugin_config(
    State(admin): State<AdminService>,
    Path(plugin): Path<String>,
) -> HttpResult {
    let config = admin
        .get_plugin_config(Request::new(pb::PluginRef { plugin }))
        .await
        .map_err(from_status)?
        .into_inner();
    let keys: Vec<Value> = config.keys.iter().map(definition_json).collect();
    Ok(ok(StatusCode::OK, Value::Array(keys)))
}

/// A `ConfigKeyInfo` in Kafka Connect's JSON.
fn definition_json(d: &pb::ConfigKeyDefinition) -> Value {
    json!({
        "name": d.name, "type": d.r#type, "required": d.required,
        "default_value": d.default_value, "importance": d.importance,
        "documentation": d.documentation,
        "group": if d.group.is_empty() { Value::Null } else { json!(d.group) },
        "order": d.order, "width": d.width, "display_name": d.display_name,
        "dependents": d.dependents,
    })
}

async fn validate_config(
    State(admin): State<AdminService>,
    Path(plugin): Path<String>,
    body: Bytes,
) -> HttpResult {
    let config = config_map(&parse_body(&body)?)?;
    let infos = admin
        .validate_config(Request::new(pb::ValidateConfigRequest {
            plugin,
            config: config.into_iter().collect(),
        }))
        .await
        .map_err(from_status)?
        .into_inner();
    let configs: Vec<Value> = infos
        .configs
        .iter()
        .map(|info| {
            let definition = info
                .definition
                .as_ref()
                .map_or(Value::Null, definition_json);
            let value = info.value.clone().unwrap_or_default();
            json!({
                "definition": definition,
                "value": {
                    "name": value.name, "value": value.value,
                    "recommended_values": value.recommended_values,
                    "errors": value.errors, "visible": value.visible,
                },
            })
        })
        .collect();
    Ok(ok(
        StatusCode::OK,
        json!({"name": infos.name, "error_count": infos.error_count, "groups": infos.groups, "configs": configs}),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use tokio::sync::watch;
    use weir_connect::registry::Registry;

    use super::*;
    use crate::store::{KvStore, LocalStore, Txn};

    /// An in-memory store whose session can be put in doubt.
    struct DoubtfulStore {
        inner: LocalStore,
        valid: Arc<AtomicBool>,
    }

    #[async_trait]
    impl KvStore for DoubtfulStore {
        async fn get(&self, key: &str) -> crate::error::Result<Option<Vec<u8>>> {
            self.inner.get(key).await
        }
        async fn list(&self, prefix: &str) -> crate::error::Result<Vec<(String, Vec<u8>)>> {
            self.inner.list(prefix).await
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> crate::error::Result<()> {
            self.inner.put(key, value).await
        }
        async fn delete(&self, key: &str) -> crate::error::Result<()> {
            self.inner.delete(key).await
        }
        async fn txn(&self, txn: Txn) -> crate::error::Result<bool> {
            self.inner.txn(txn).await
        }
        async fn create_ephemeral(&self, key: &str, value: Vec<u8>) -> crate::error::Result<bool> {
            self.inner.create_ephemeral(key, value).await
        }
        async fn put_ephemeral(&self, key: &str, value: Vec<u8>) -> crate::error::Result<()> {
            self.inner.put_ephemeral(key, value).await
        }
        fn changes(&self) -> watch::Receiver<u64> {
            self.inner.changes()
        }
        fn session_valid(&self) -> bool {
            self.valid.load(Ordering::Relaxed)
        }
        async fn close(&self) -> crate::error::Result<()> {
            self.inner.close().await
        }
    }

    #[tokio::test]
    async fn health_is_500_unhealthy_while_the_store_session_is_in_doubt() {
        let valid = Arc::new(AtomicBool::new(true));
        let store: crate::store::Store = Arc::new(DoubtfulStore {
            inner: LocalStore::in_memory(),
            valid: valid.clone(),
        });
        let admin = AdminService::new(store, Arc::new(Registry::builtin()), "c1".into());
        assert_eq!(health(State(admin.clone())).await.status(), StatusCode::OK);
        valid.store(false, Ordering::Relaxed);
        let response = health(State(admin)).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], "unhealthy");
    }

    #[tokio::test]
    async fn health_is_503_starting_until_the_startup_probe_says_started() {
        let started = Arc::new(AtomicBool::new(false));
        let probe = started.clone();
        let admin = AdminService::new(
            Arc::new(LocalStore::in_memory()),
            Arc::new(Registry::builtin()),
            "c1".into(),
        )
        .with_startup_probe(StartupProbe(Arc::new(move || {
            probe.load(Ordering::Relaxed)
        })));
        let response = health(State(admin.clone())).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], "starting");
        started.store(true, Ordering::Relaxed);
        assert_eq!(health(State(admin)).await.status(), StatusCode::OK);
    }
}
