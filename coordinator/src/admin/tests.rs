//! The admin operations a REST or gRPC user drives, over the in-memory store:
//! what each one writes under `connectors/`, `tasks/`, `status/` and the
//! other keys of a connector, and the gRPC code of each refusal.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tonic::Code;
use weir_proto::control::v1 as control;

use super::*;
use crate::links::{Outbound, RunnerAnswer};
use crate::store::LocalStore;

const SOURCE: &str = "VerifiableSource";
const SINK: &str = "VerifiableSink";

fn memory_store() -> Store {
    Arc::new(LocalStore::in_memory())
}

fn admin_over(store: &Store) -> AdminService {
    AdminService::new(store.clone(), Arc::new(Registry::builtin()), "c1".into())
}

fn pairs(entries: &[(&str, &str)]) -> HashMap<String, String> {
    entries
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn config_map(entries: &[(&str, &str)]) -> ConfigMap {
    pairs(entries).into_iter().collect()
}

fn named(name: &str) -> Request<pb::ConnectorRef> {
    Request::new(pb::ConnectorRef {
        name: name.to_owned(),
    })
}

async fn create(
    admin: &AdminService,
    name: &str,
    config: &[(&str, &str)],
) -> std::result::Result<pb::ConnectorInfo, Status> {
    admin
        .create_connector(Request::new(pb::CreateConnectorRequest {
            name: name.to_owned(),
            config: pairs(config),
            initial_state: None,
        }))
        .await
        .map(Response::into_inner)
}

async fn create_source(admin: &AdminService, name: &str, topic: &str) {
    create(
        admin,
        name,
        &[("connector.class", SOURCE), ("topic", topic)],
    )
    .await
    .expect("a valid source config is created");
}

async fn create_stopped(admin: &AdminService, name: &str, config: &[(&str, &str)]) {
    admin
        .create_connector(Request::new(pb::CreateConnectorRequest {
            name: name.to_owned(),
            config: pairs(config),
            initial_state: Some(pb::TargetState::Stopped as i32),
        }))
        .await
        .expect("a valid config is created");
}

async fn put_config(
    admin: &AdminService,
    name: &str,
    config: &[(&str, &str)],
) -> std::result::Result<pb::PutConnectorConfigResponse, Status> {
    admin
        .put_connector_config(Request::new(pb::PutConnectorConfigRequest {
            name: name.to_owned(),
            config: pairs(config),
        }))
        .await
        .map(Response::into_inner)
}

async fn stored<T: DeserializeOwned>(store: &Store, key: &str) -> Option<T> {
    read_json(store, key).await.expect("a readable record")
}

async fn stored_config(store: &Store, name: &str) -> Option<ConfigMap> {
    stored(store, &keys::connector_config(name)).await
}

async fn stored_target(store: &Store, name: &str) -> Option<TargetState> {
    stored::<TargetRecord>(store, &keys::connector_target(name))
        .await
        .map(|record| record.state)
}

async fn stored_generation(store: &Store, name: &str) -> Option<u64> {
    stored(store, &keys::connector_generation(name)).await
}

async fn stored_status_of_task(store: &Store, name: &str, task: i32) -> Option<StatusRecord> {
    stored(store, &keys::task_status(name, task)).await
}

async fn stored_keys(store: &Store) -> Vec<String> {
    store
        .list("")
        .await
        .expect("the store lists")
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

fn assert_code<T: std::fmt::Debug>(outcome: std::result::Result<T, Status>, code: Code) -> Status {
    match outcome {
        Err(status) => {
            assert_eq!(status.code(), code, "{}", status.message());
            status
        }
        Ok(value) => panic!("expected {code:?}, got Ok({value:?})"),
    }
}

#[tokio::test]
async fn creating_a_connector_writes_its_config_a_running_target_and_generation_1() {
    let store = memory_store();
    let admin = admin_over(&store);
    let info = create(
        &admin,
        "orders",
        &[("connector.class", SOURCE), ("topic", "orders")],
    )
    .await
    .expect("created");
    assert_eq!(info.name, "orders");
    assert_eq!(info.r#type, pb::ConnectorType::Source as i32);
    assert!(info.tasks.is_empty(), "no task configs made yet");
    let with_name = config_map(&[
        ("connector.class", SOURCE),
        ("topic", "orders"),
        ("name", "orders"),
    ]);
    assert_eq!(info.config.into_iter().collect::<ConfigMap>(), with_name);
    assert_eq!(stored_config(&store, "orders").await, Some(with_name));
    assert_eq!(
        stored_target(&store, "orders").await,
        Some(TargetState::Running)
    );
    assert_eq!(stored_generation(&store, "orders").await, Some(1));
    assert_eq!(
        stored_keys(&store).await,
        [
            keys::connector_config("orders"),
            keys::connector_generation("orders"),
            keys::connector_target("orders"),
        ],
        "nothing but the connector's own keys is written"
    );
}

#[tokio::test]
async fn creating_a_connector_that_exists_is_already_exists_and_keeps_the_first_config() {
    let store = memory_store();
    let admin = admin_over(&store);
    create_source(&admin, "orders", "first").await;
    let second = create(
        &admin,
        "orders",
        &[("connector.class", SOURCE), ("topic", "second")],
    )
    .await;
    let status = assert_code(second, Code::AlreadyExists);
    assert_eq!(status.message(), "Connector orders already exists");
    let config = stored_config(&store, "orders").await.expect("still stored");
    assert_eq!(config.get("topic").map(String::as_str), Some("first"));
    assert_eq!(stored_generation(&store, "orders").await, Some(1));
}

#[tokio::test]
async fn a_connector_created_stopped_is_stored_stopped_with_a_stopped_status() {
    let store = memory_store();
    let admin = admin_over(&store);
    create_stopped(
        &admin,
        "orders",
        &[("connector.class", SOURCE), ("topic", "orders")],
    )
    .await;
    assert_eq!(
        stored_target(&store, "orders").await,
        Some(TargetState::Stopped)
    );
    let status: StatusRecord = stored(&store, &keys::connector_status("orders"))
        .await
        .expect("a status");
    assert_eq!(
        (status.state, status.worker_id.as_str()),
        (InstanceState::Stopped, "c1")
    );
}

#[tokio::test]
async fn an_invalid_config_is_invalid_argument_and_nothing_is_stored() {
    let store = memory_store();
    let admin = admin_over(&store);
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("connector.class", SOURCE)],
            "Missing required configuration \"topic\"",
        ),
        (
            &[
                ("connector.class", SOURCE),
                ("topic", "t"),
                ("throughput", "0"),
            ],
            "throughput",
        ),
        (
            &[("connector.class", "NoSuchConnector"), ("topic", "t")],
            "Failed to find any class that implements Connector and which name matches NoSuchConnector",
        ),
        (&[("topic", "t")], "contains no connector type"),
    ];
    for (config, expected) in cases {
        let status = assert_code(
            create(&admin, "orders", config).await,
            Code::InvalidArgument,
        );
        assert!(
            status.message().contains(expected),
            "{config:?}: {:?} does not name {expected:?}",
            status.message()
        );
    }
    assert_eq!(stored_keys(&store).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_name_in_the_config_that_differs_from_the_connectors_is_invalid_argument() {
    let store = memory_store();
    let admin = admin_over(&store);
    let config = [
        ("connector.class", SOURCE),
        ("topic", "t"),
        ("name", "other"),
    ];
    assert_code(
        create(&admin, "orders", &config).await,
        Code::InvalidArgument,
    );
    assert_code(
        put_config(&admin, "orders", &config).await,
        Code::InvalidArgument,
    );
    assert_eq!(stored_keys(&store).await, Vec::<String>::new());
}

#[tokio::test]
async fn get_config_shows_the_stored_config_with_secrets_hidden() {
    let store = memory_store();
    let admin = admin_over(&store);
    create(
        &admin,
        "orders",
        &[
            ("connector.class", SOURCE),
            ("topic", "orders"),
            ("db.password", "hunter2"),
        ],
    )
    .await
    .expect("created");
    let shown = admin
        .get_connector_config(named("orders"))
        .await
        .expect("found")
        .into_inner()
        .config;
    assert_eq!(
        shown,
        pairs(&[
            ("connector.class", SOURCE),
            ("topic", "orders"),
            ("db.password", HIDDEN),
            ("name", "orders"),
        ])
    );
    let kept = stored_config(&store, "orders").await.expect("stored");
    assert_eq!(kept.get("db.password").map(String::as_str), Some("hunter2"));
    let status = assert_code(
        admin.get_connector_config(named("missing")).await,
        Code::NotFound,
    );
    assert_eq!(status.message(), "Connector missing not found");
}

#[tokio::test]
async fn put_config_replaces_the_config_bumps_the_generation_and_keeps_the_target() {
    let store = memory_store();
    let admin = admin_over(&store);
    create_source(&admin, "orders", "first").await;
    admin
        .pause_connector(named("orders"))
        .await
        .expect("paused");
    let reply = put_config(
        &admin,
        "orders",
        &[("connector.class", SOURCE), ("topic", "second")],
    )
    .await
    .expect("updated");
    assert!(!reply.created);
    assert_eq!(
        stored_config(&store, "orders").await,
        Some(config_map(&[
            ("connector.class", SOURCE),
            ("topic", "second"),
            ("name", "orders"),
        ]))
    );
    assert_eq!(stored_generation(&store, "orders").await, Some(2));
    assert_eq!(
        stored_target(&store, "orders").await,
        Some(TargetState::Paused)
    );
}

#[tokio::test]
async fn put_config_of_a_new_name_creates_the_connector() {
    let store = memory_store();
    let admin = admin_over(&store);
    let reply = put_config(
        &admin,
        "orders",
        &[("connector.class", SOURCE), ("topic", "orders")],
    )
    .await
    .expect("created");
    assert!(reply.created);
    assert_eq!(reply.info.map(|info| info.name).as_deref(), Some("orders"));
    assert_eq!(
        stored_target(&store, "orders").await,
        Some(TargetState::Running)
    );
    assert_eq!(stored_generation(&store, "orders").await, Some(1));
}

#[tokio::test]
async fn put_config_with_a_hidden_secret_keeps_the_stored_one() {
    let store = memory_store();
    let admin = admin_over(&store);
    let secret = ("db.password", "hunter2");
    create(
        &admin,
        "orders",
        &[("connector.class", SOURCE), ("topic", "first"), secret],
    )
    .await
    .expect("created");
    // What a user sends back after editing what GET showed.
    put_config(
        &admin,
        "orders",
        &[
            ("connector.class", SOURCE),
            ("topic", "second"),
            ("db.password", HIDDEN),
        ],
    )
    .await
    .expect("updated");
    let config = stored_config(&store, "orders").await.expect("stored");
    assert_eq!(config.get("topic").map(String::as_str), Some("second"));
    assert_eq!(
        config.get("db.password").map(String::as_str),
        Some("hunter2")
    );
    // With nothing stored to keep, the placeholder is refused.
    let refused = put_config(
        &admin,
        "fresh",
        &[
            ("connector.class", SOURCE),
            ("topic", "t"),
            ("db.password", HIDDEN),
        ],
    )
    .await;
    assert_code(refused, Code::InvalidArgument);
    assert_eq!(stored_config(&store, "fresh").await, None);
}

#[tokio::test]
async fn pause_and_resume_write_the_target_state_and_leave_the_generation() {
    let store = memory_store();
    let admin = admin_over(&store);
    create_source(&admin, "orders", "orders").await;
    admin
        .pause_connector(named("orders"))
        .await
        .expect("paused");
    assert_eq!(
        stored_target(&store, "orders").await,
        Some(TargetState::Paused)
    );
    admin
        .resume_connector(named("orders"))
        .await
        .expect("resumed");
    assert_eq!(
        stored_target(&store, "orders").await,
        Some(TargetState::Running)
    );
    assert_eq!(stored_generation(&store, "orders").await, Some(1));
    let status = assert_code(
        admin.pause_connector(named("missing")).await,
        Code::NotFound,
    );
    assert_eq!(status.message(), "Unknown connector missing");
    assert_code(
        admin.resume_connector(named("missing")).await,
        Code::NotFound,
    );
    assert_eq!(stored_target(&store, "missing").await, None);
}

#[tokio::test]
async fn stop_empties_the_task_configs_and_resume_has_them_made_again() {
    let store = memory_store();
    let admin = admin_over(&store);
    create_source(&admin, "orders", "orders").await;
    let running = TaskConfigsRecord {
        generation: 1,
        configs: vec![config_map(&[("task.id", "0")])],
    };
    store
        .put(&keys::task_configs("orders"), to_json(&running).unwrap())
        .await
        .unwrap();
    store
        .put(
            &keys::task_status("orders", 0),
            to_json(&StatusRecord {
                state: InstanceState::Running,
                worker_id: "r1".into(),
                trace: String::new(),
                epoch: 1,
            })
            .unwrap(),
        )
        .await
        .unwrap();

    admin
        .stop_connector(named("orders"))
        .await
        .expect("stopped");
    assert_eq!(
        stored_target(&store, "orders").await,
        Some(TargetState::Stopped)
    );
    assert_eq!(stored_generation(&store, "orders").await, Some(2));
    assert_eq!(
        stored::<TaskConfigsRecord>(&store, &keys::task_configs("orders")).await,
        Some(TaskConfigsRecord {
            generation: 2,
            configs: Vec::new(),
        })
    );
    let status: StatusRecord = stored(&store, &keys::connector_status("orders"))
        .await
        .expect("a status");
    assert_eq!(status.state, InstanceState::Stopped);
    assert_eq!(stored_status_of_task(&store, "orders", 0).await, None);

    admin
        .resume_connector(named("orders"))
        .await
        .expect("resumed");
    assert_eq!(
        stored_target(&store, "orders").await,
        Some(TargetState::Running)
    );
    assert_eq!(stored_generation(&store, "orders").await, Some(3));
    assert_eq!(
        stored::<StatusRecord>(&store, &keys::connector_status("orders")).await,
        None,
        "the STOPPED status goes until the connector reports again"
    );
}

/// Every key a running connector `name` can have, each with a value.
async fn write_every_key_of(store: &Store, admin: &AdminService, name: &str) -> Vec<String> {
    create_source(admin, name, name).await;
    let written = [
        keys::task_configs(name),
        keys::connector_status(name),
        keys::task_status(name, 0),
        keys::task_restart(name, 0),
        keys::topic(name, "events"),
        keys::offsets(name),
    ];
    for key in &written {
        store.put(key, b"{}".to_vec()).await.unwrap();
    }
    let mut every: Vec<String> = [
        keys::connector_config(name),
        keys::connector_target(name),
        keys::connector_generation(name),
    ]
    .into_iter()
    .chain(written)
    .collect();
    every.sort();
    every
}

#[tokio::test]
async fn delete_removes_every_key_of_the_connector_and_no_other() {
    let store = memory_store();
    let admin = admin_over(&store);
    let deleted = write_every_key_of(&store, &admin, "orders").await;
    // A neighbour whose name starts with the deleted one's.
    let neighbour = write_every_key_of(&store, &admin, "orders-eu").await;
    let mut both = [deleted.clone(), neighbour.clone()].concat();
    both.sort();
    assert_eq!(stored_keys(&store).await, both);

    admin
        .delete_connector(named("orders"))
        .await
        .expect("deleted");
    assert_eq!(stored_keys(&store).await, neighbour);
    let status = assert_code(
        admin.delete_connector(named("orders")).await,
        Code::NotFound,
    );
    assert_eq!(status.message(), "Connector orders not found");
    assert_code(admin.get_connector(named("orders")).await, Code::NotFound);
}

#[tokio::test]
async fn list_names_every_connector_and_expands_their_status_and_info() {
    let store = memory_store();
    let admin = admin_over(&store);
    let list = |expand_status, expand_info| {
        admin.list_connectors(Request::new(pb::ListConnectorsRequest {
            expand_status,
            expand_info,
        }))
    };
    let empty = list(false, false).await.expect("listed").into_inner();
    assert!(empty.connectors.is_empty());

    create_source(&admin, "b-orders", "orders").await;
    create_source(&admin, "a-users", "users").await;
    let names = list(false, false).await.expect("listed").into_inner();
    let shown: Vec<(&str, bool, bool)> = names
        .connectors
        .iter()
        .map(|c| (c.name.as_str(), c.status.is_some(), c.info.is_some()))
        .collect();
    assert_eq!(
        shown,
        [("a-users", false, false), ("b-orders", false, false)]
    );

    let expanded = list(true, true).await.expect("listed").into_inner();
    assert_eq!(expanded.connectors.len(), 2);
    let users = &expanded.connectors[0];
    let info = users.info.as_ref().expect("info");
    assert_eq!(info.config.get("topic").map(String::as_str), Some("users"));
    assert_eq!(info.r#type, pb::ConnectorType::Source as i32);
    let status = users.status.as_ref().expect("status");
    let connector = status.connector.as_ref().expect("the connector's status");
    assert_eq!(
        (connector.state, connector.worker_id.as_str()),
        (pb::State::Unassigned as i32, "c1"),
        "nothing reported yet: UNASSIGNED on the coordinator that answers"
    );
}

#[tokio::test]
async fn restart_of_an_unknown_connector_or_task_is_not_found() {
    let store = memory_store();
    let admin = admin_over(&store);
    let restart = admin
        .restart_connector(Request::new(pb::RestartConnectorRequest {
            name: "missing".into(),
            include_tasks: true,
            only_failed: false,
        }))
        .await;
    let status = assert_code(restart, Code::NotFound);
    assert_eq!(status.message(), "Unknown connector: missing");

    create_source(&admin, "orders", "orders").await;
    let task = |connector: &str, task| {
        Request::new(pb::TaskRef {
            connector: connector.to_owned(),
            task,
        })
    };
    assert_code(admin.restart_task(task("missing", 0)).await, Code::NotFound);
    // The connector exists but has made no task configs: it has no task 0.
    let status = assert_code(admin.restart_task(task("orders", 0)).await, Code::NotFound);
    assert_eq!(status.message(), "Unknown task: orders-0");
    assert_eq!(
        store.list(keys::RESTARTS).await.unwrap(),
        Vec::new(),
        "no restart recorded"
    );
}

#[tokio::test]
async fn restart_bumps_the_generation_and_shows_the_connector_restarting() {
    let store = memory_store();
    let admin = admin_over(&store);
    create_source(&admin, "orders", "orders").await;
    let reply = admin
        .restart_connector(Request::new(pb::RestartConnectorRequest {
            name: "orders".into(),
            include_tasks: false,
            only_failed: false,
        }))
        .await
        .expect("restarted")
        .into_inner();
    assert_eq!(reply.status, None, "Kafka Connect answers 204 here");
    assert_eq!(stored_generation(&store, "orders").await, Some(2));
    let status: StatusRecord = stored(&store, &keys::connector_status("orders"))
        .await
        .expect("a status");
    assert_eq!(status.state, InstanceState::Restarting);
}

fn offsets(entries: &[(&str, &str)]) -> Vec<pb::ConnectorOffset> {
    entries
        .iter()
        .map(|(partition, offset)| pb::ConnectorOffset {
            partition_json: (*partition).to_owned(),
            offset_json: (*offset).to_owned(),
        })
        .collect()
}

async fn alter(
    admin: &AdminService,
    name: &str,
    offsets: Vec<pb::ConnectorOffset>,
) -> std::result::Result<pb::OffsetsMessage, Status> {
    admin
        .alter_connector_offsets(Request::new(pb::AlterOffsetsRequest {
            name: name.to_owned(),
            offsets,
        }))
        .await
        .map(Response::into_inner)
}

/// Links a runner to `links` that answers every offsets request with
/// `answer`; what it was asked arrives on the returned channel.
fn runner_answering(
    links: &RunnerLinks,
    answer: impl Fn(&control::OffsetsRequest) -> control::OffsetsReply + Send + 'static,
) -> mpsc::UnboundedReceiver<control::OffsetsRequest> {
    let (outbound, mut to_runner) = mpsc::channel::<Outbound>(8);
    let taps = links.add("session-1", "r1", outbound);
    assert!(taps.is_empty());
    let (asked, requests) = mpsc::unbounded_channel();
    let links = links.clone();
    tokio::spawn(async move {
        while let Some(Ok(message)) = to_runner.recv().await {
            if let Some(control::coordinator_message::Body::OffsetsRequest(request)) = message.body
            {
                let reply = answer(&request);
                let id = request.id;
                let _ = asked.send(request);
                links.answered(id, RunnerAnswer::Offsets(reply));
            }
        }
    });
    requests
}

const SOURCE_PARTITION: &str = r#"{"file":"a.txt"}"#;
const SOURCE_OFFSET: &str = r#"{"position":42}"#;

#[tokio::test]
async fn offsets_change_only_while_the_connector_is_stopped() {
    let store = memory_store();
    let admin = admin_over(&store);
    create_source(&admin, "orders", "orders").await;
    let offsets_of_a_file = offsets(&[(SOURCE_PARTITION, SOURCE_OFFSET)]);
    let status = assert_code(
        alter(&admin, "orders", offsets_of_a_file.clone()).await,
        Code::InvalidArgument,
    );
    assert!(
        status
            .message()
            .starts_with("Connectors must be in the STOPPED state"),
        "{}",
        status.message()
    );
    assert_code(
        admin.reset_connector_offsets(named("orders")).await,
        Code::InvalidArgument,
    );
    assert_code(
        alter(&admin, "missing", offsets_of_a_file).await,
        Code::NotFound,
    );
    assert_code(
        admin.reset_connector_offsets(named("missing")).await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn an_alter_without_offsets_or_with_a_malformed_sink_offset_is_invalid_argument() {
    let store = memory_store();
    let admin = admin_over(&store);
    create_stopped(
        &admin,
        "sink",
        &[
            ("connector.class", SINK),
            ("file", "/dev/null"),
            ("topics", "orders"),
        ],
    )
    .await;
    let status = assert_code(
        alter(&admin, "sink", Vec::new()).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        status.message(),
        "Partitions / offsets need to be provided for an alter offsets request"
    );
    let cases = [
        (
            r#"{"kafka_topic":"t"}"#,
            r#"{"kafka_offset":1}"#,
            "The partition for a sink connector offset must contain the keys 'kafka_topic' and 'kafka_partition'",
        ),
        (
            r#"{"kafka_topic":"t","kafka_partition":"0"}"#,
            r#"{"kafka_offset":1}"#,
            "Partition values for sink connectors need to be integers",
        ),
        (
            r#"{"kafka_topic":"t","kafka_partition":0}"#,
            r#"{"position":1}"#,
            "The offset for a sink connector should either be null or contain the key 'kafka_offset'",
        ),
    ];
    for (partition, offset, expected) in cases {
        let status = assert_code(
            alter(&admin, "sink", offsets(&[(partition, offset)])).await,
            Code::InvalidArgument,
        );
        assert_eq!(status.message(), expected);
    }
}

#[tokio::test]
async fn offsets_are_read_and_altered_by_a_connected_runner_and_the_stored_mirror_goes() {
    let store = memory_store();
    let links = RunnerLinks::default();
    let admin = admin_over(&store).with_runner_links(links.clone());
    create_stopped(
        &admin,
        "orders",
        &[("connector.class", SOURCE), ("topic", "orders")],
    )
    .await;
    let mirror = keys::offsets("orders");
    store.put(&mirror, b"[]".to_vec()).await.unwrap();

    // Without a runner here, nothing can reach the offsets.
    let status = assert_code(
        admin.get_connector_offsets(named("orders")).await,
        Code::Internal,
    );
    assert!(status.message().starts_with("No runner is connected"));

    let mut asked = runner_answering(&links, |request| control::OffsetsReply {
        id: request.id,
        error: String::new(),
        offsets: vec![control::SourceOffset {
            partition_json: SOURCE_PARTITION.into(),
            offset_json: SOURCE_OFFSET.into(),
        }],
    });
    let read = admin
        .get_connector_offsets(named("orders"))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(read.offsets, offsets(&[(SOURCE_PARTITION, SOURCE_OFFSET)]));
    let request = asked.try_recv().expect("the runner was asked");
    assert_eq!(
        (request.connector.as_str(), request.op()),
        ("orders", control::OffsetsOp::Get)
    );
    assert_eq!(
        request.config.get("topic").map(String::as_str),
        Some("orders")
    );
    assert!(
        store.get(&mirror).await.unwrap().is_some(),
        "a read keeps it"
    );

    let altered = alter(
        &admin,
        "orders",
        offsets(&[(SOURCE_PARTITION, r#"{"position":7}"#)]),
    )
    .await
    .expect("altered");
    assert_eq!(
        altered.message,
        "The offsets for this connector have been altered successfully"
    );
    let request = asked.try_recv().expect("the runner was asked");
    assert_eq!(request.op(), control::OffsetsOp::Alter);
    assert_eq!(
        request.offsets,
        [control::SourceOffset {
            partition_json: SOURCE_PARTITION.into(),
            offset_json: r#"{"position":7}"#.into(),
        }]
    );
    assert_eq!(store.get(&mirror).await.unwrap(), None);

    store.put(&mirror, b"[]".to_vec()).await.unwrap();
    let reset = admin
        .reset_connector_offsets(named("orders"))
        .await
        .expect("reset")
        .into_inner();
    assert_eq!(
        reset.message,
        "The offsets for this connector have been reset successfully"
    );
    assert_eq!(
        asked.try_recv().expect("the runner was asked").op(),
        control::OffsetsOp::Reset
    );
    assert_eq!(store.get(&mirror).await.unwrap(), None);
}

#[tokio::test]
async fn an_offsets_change_the_runner_refuses_is_invalid_argument_and_keeps_the_mirror() {
    let store = memory_store();
    let links = RunnerLinks::default();
    let admin = admin_over(&store).with_runner_links(links.clone());
    create_stopped(
        &admin,
        "orders",
        &[("connector.class", SOURCE), ("topic", "orders")],
    )
    .await;
    let mirror = keys::offsets("orders");
    store.put(&mirror, b"[]".to_vec()).await.unwrap();
    let _asked = runner_answering(&links, |request| control::OffsetsReply {
        id: request.id,
        error: "the offsets topic is unreachable".into(),
        offsets: Vec::new(),
    });
    let status = assert_code(
        admin.reset_connector_offsets(named("orders")).await,
        Code::InvalidArgument,
    );
    assert_eq!(status.message(), "the offsets topic is unreachable");
    assert_eq!(store.get(&mirror).await.unwrap(), Some(b"[]".to_vec()));
}

// An offsets change waits for a STOPPED connector's tasks to stop.

async fn stopped_connector_with_a_stopping_task() -> (AdminService, Store) {
    let store: Store = Arc::new(LocalStore::in_memory());
    let config: ConfigMap = [("connector.class", "VerifiableSource")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    store
        .put(&keys::connector_config("c"), to_json(&config).unwrap())
        .await
        .unwrap();
    let target = TargetRecord {
        state: TargetState::Stopped,
    };
    store
        .put(&keys::connector_target("c"), to_json(&target).unwrap())
        .await
        .unwrap();
    // The runner has not yet reported the task stopped (its final
    // commit is still under way).
    let applied = AppliedRecord {
        epoch: 3,
        tasks: vec![TaskId {
            connector: "c".into(),
            task: 0,
        }],
    };
    store
        .put(&keys::applied("r1"), to_json(&applied).unwrap())
        .await
        .unwrap();
    let admin = AdminService::new(store.clone(), Arc::new(Registry::builtin()), "c1".into());
    (admin, store)
}

#[tokio::test(start_paused = true)]
async fn an_offsets_change_waits_until_the_stopped_connectors_tasks_have_stopped() {
    let (admin, store) = stopped_connector_with_a_stopping_task().await;
    let stops = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(12)).await;
        let applied = AppliedRecord {
            epoch: 4,
            tasks: Vec::new(),
        };
        store
            .put(&keys::applied("r1"), to_json(&applied).unwrap())
            .await
            .unwrap();
        tokio::time::Instant::now()
    });
    admin.stopped("c").await.expect("allowed once stopped");
    let allowed_at = tokio::time::Instant::now();
    let stopped_at = stops.await.unwrap();
    assert!(allowed_at >= stopped_at, "allowed before the task stopped");
}

#[tokio::test(start_paused = true)]
async fn an_offsets_change_is_refused_while_a_task_never_stops() {
    let (admin, _store) = stopped_connector_with_a_stopping_task().await;
    match admin.stopped("c").await {
        Err(Error::Conflict(message)) => {
            assert!(message.contains("still stopping on runner r1"), "{message}")
        }
        Err(other) => panic!("expected a conflict, got {other:?}"),
        Ok(_) => panic!("expected a conflict, got Ok"),
    }
}
