//! The OpenAPI 3 document of the REST API, served at `GET /openapi.json`.
//! It is built from [`OPERATIONS`]; a test reads the router's routes from
//! `rest.rs` and fails when the two differ, so the document cannot drift.

use serde_json::{Map, Value, json};

/// One documented route and method.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// The status of a success.
    pub success: u16,
    /// Takes a JSON body.
    pub body: bool,
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    success: u16,
    body: bool,
) -> Operation {
    Operation {
        method,
        path,
        summary,
        success,
        body,
    }
}

/// Every route of the REST API, as Kafka Connect documents it.
pub const OPERATIONS: &[Operation] = &[
    op(
        "get",
        "/",
        "Version, commit and Kafka cluster id of the worker.",
        200,
        false,
    ),
    op(
        "get",
        "/health",
        "Whether the worker is ready to handle requests (KIP-1017).",
        200,
        false,
    ),
    op(
        "get",
        "/connectors",
        "Connector names; with ?expand=status and ?expand=info, each connector's status and info.",
        200,
        false,
    ),
    op(
        "post",
        "/connectors",
        "Creates a connector from {\"name\":…,\"config\":{…}}.",
        201,
        true,
    ),
    op(
        "get",
        "/connectors/{name}",
        "A connector's config and tasks.",
        200,
        false,
    ),
    op(
        "delete",
        "/connectors/{name}",
        "Deletes a connector.",
        204,
        false,
    ),
    op(
        "get",
        "/connectors/{name}/config",
        "A connector's config (secrets hidden).",
        200,
        false,
    ),
    op(
        "put",
        "/connectors/{name}/config",
        "Creates or replaces a connector's config.",
        200,
        true,
    ),
    op(
        "patch",
        "/connectors/{name}/config",
        "Merges keys into a connector's config; null removes a key.",
        200,
        true,
    ),
    op(
        "get",
        "/connectors/{name}/status",
        "The state of a connector and of each of its tasks.",
        200,
        false,
    ),
    op(
        "post",
        "/connectors/{name}/restart",
        "Restarts a connector; ?includeTasks and ?onlyFailed restart tasks too.",
        202,
        false,
    ),
    op(
        "put",
        "/connectors/{name}/pause",
        "Pauses a connector and its tasks.",
        202,
        false,
    ),
    op(
        "put",
        "/connectors/{name}/resume",
        "Resumes a paused or stopped connector.",
        202,
        false,
    ),
    op(
        "put",
        "/connectors/{name}/stop",
        "Stops a connector and shuts its tasks down.",
        204,
        false,
    ),
    op(
        "get",
        "/connectors/{name}/tasks",
        "A connector's task configs.",
        200,
        false,
    ),
    op(
        "get",
        "/connectors/{name}/tasks/{task}/status",
        "One task's state.",
        200,
        false,
    ),
    op(
        "post",
        "/connectors/{name}/tasks/{task}/restart",
        "Restarts one task.",
        204,
        false,
    ),
    op(
        "get",
        "/connectors/{name}/topics",
        "The topics a connector has used.",
        200,
        false,
    ),
    op(
        "get",
        "/connectors/{name}/offsets",
        "A connector's committed offsets.",
        200,
        false,
    ),
    op(
        "patch",
        "/connectors/{name}/offsets",
        "Alters a stopped connector's offsets.",
        200,
        true,
    ),
    op(
        "delete",
        "/connectors/{name}/offsets",
        "Resets a stopped connector's offsets.",
        200,
        false,
    ),
    op(
        "get",
        "/connectors/{name}/tap",
        "Weir only: records passing the connector's tasks, live, as Server-Sent Events (text/event-stream); ?task=N&point=after_poll|after_transforms|before_put&rate=R.",
        200,
        false,
    ),
    op(
        "get",
        "/runners",
        "Weir only: the runners connected to the cluster and what each is assigned.",
        200,
        false,
    ),
    op(
        "get",
        "/connector-plugins",
        "Connector plugins; ?connectorsOnly=false adds converters and transformations.",
        200,
        false,
    ),
    op(
        "get",
        "/connector-plugins/{plugin}/config",
        "A plugin's config definition.",
        200,
        false,
    ),
    op(
        "put",
        "/connector-plugins/{plugin}/config/validate",
        "Validates a connector config against its plugin.",
        200,
        true,
    ),
    op("get", "/admin/loggers", "Logger levels.", 200, false),
    op(
        "get",
        "/admin/loggers/{name}",
        "One logger's level.",
        200,
        false,
    ),
    op(
        "put",
        "/admin/loggers/{name}",
        "Sets a logger's level; ?scope=cluster for every runner.",
        200,
        true,
    ),
    op("get", "/openapi.json", "This document.", 200, false),
];

/// The path parameters of `path` (`{name}` → `name`).
fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

/// The OpenAPI 3 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for operation in OPERATIONS {
        let mut responses = Map::new();
        let success = if operation.success == 204 {
            json!({"description": "Done; no body."})
        } else if operation.path.ends_with("/tap") {
            json!({"description": "An endless stream of `record` events.", "content": {"text/event-stream": {"schema": {"type": "string"}}}})
        } else {
            json!({"description": "Done.", "content": {"application/json": {"schema": {}}}})
        };
        responses.insert(operation.success.to_string(), success);
        responses.insert(
            "4XX".into(),
            json!({"description": "Refused, with Kafka Connect's error body.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
        let mut entry = json!({
            "summary": operation.summary,
            "parameters": parameters(operation.path),
            "responses": responses,
        });
        if operation.body {
            entry["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let item = paths
            .entry(operation.path.to_owned())
            .or_insert_with(|| json!({}));
        item[operation.method] = entry;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Weir REST API (Kafka Connect compatible)",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
        "components": {"schemas": {"Error": {
            "type": "object",
            "required": ["error_code", "message"],
            "properties": {
                "error_code": {"type": "integer"},
                "message": {"type": "string"},
            },
        }}},
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The (method, path) pairs `rest.rs`'s router declares.
    fn routes_in_the_router() -> BTreeSet<(String, String)> {
        let source = include_str!("rest.rs");
        let start = source
            .find("pub fn router(admin: AdminService) -> Router {")
            .expect("the router function");
        let body = &source[start..];
        let body = &body[..body.find("\n}\n").expect("the router's end")];
        let mut routes = BTreeSet::new();
        for chunk in body.split(".route(").skip(1) {
            let path = chunk.split('"').nth(1).expect("a route path").to_owned();
            // The chunk runs to the next route (or fallback): its method routers.
            let methods = chunk.split(".fallback(").next().unwrap_or(chunk);
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = methods.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0
                        || !methods.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && methods.as_bytes()[i - 1] != b'_'
                });
                if called {
                    routes.insert((method.to_owned(), path.clone()));
                }
            }
        }
        routes
    }

    #[test]
    fn the_document_lists_exactly_the_routes_of_the_router() {
        let documented: BTreeSet<(String, String)> = OPERATIONS
            .iter()
            .map(|op| (op.method.to_owned(), op.path.to_owned()))
            .collect();
        let routed = routes_in_the_router();
        assert!(routed.len() > 20, "{routed:?}");
        assert_eq!(
            documented.difference(&routed).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "documented but not routed"
        );
        assert_eq!(
            routed.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "routed but not documented"
        );
    }

    #[test]
    fn the_document_is_openapi_3_with_path_parameters() {
        let document = document();
        assert_eq!(document["openapi"], "3.0.3");
        let status = &document["paths"]["/connectors/{name}/tasks/{task}/status"]["get"];
        let names: Vec<&str> = status["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["name", "task"]);
        assert!(document["paths"]["/connectors"]["post"]["requestBody"].is_object());
    }
}
