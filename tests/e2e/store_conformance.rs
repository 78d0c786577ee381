//! One behavioural suite, run against both state stores: etcd (a real etcd
//! process) and the local store of standalone mode.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use weir_coordinator::store::{EtcdStore, LocalStore, conformance};
use weir_tests::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_store_passes_the_store_suite() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint), "/conformance/")
        .await
        .unwrap();
    conformance::run(store.as_ref()).await.unwrap();
}

#[tokio::test]
async fn local_store_passes_the_store_suite() {
    conformance::run(&LocalStore::in_memory()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_prefixes_isolate_clusters() {
    let etcd = Etcd::start();
    let endpoints = std::slice::from_ref(&etcd.endpoint);
    let a = EtcdStore::connect(endpoints, "/a/").await.unwrap();
    let b = EtcdStore::connect(endpoints, "/b").await.unwrap();
    use weir_coordinator::store::KvStore;
    a.put("connectors/x/config", b"{}".to_vec()).await.unwrap();
    assert!(b.list("connectors/").await.unwrap().is_empty());
    assert_eq!(a.list("connectors/").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_readers_are_not_woken_by_writes_they_do_not_read() {
    use weir_coordinator::store::KvStore;
    let etcd = Etcd::start();
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint), "/scoped/")
        .await
        .unwrap();
    let mut assignments = store.changes_under(&["assignments/"]);
    let mut everything = store.changes();
    let seen = *assignments.borrow_and_update();
    let all_seen = *everything.borrow_and_update();
    store.put("offsets/c", b"{}".to_vec()).await.unwrap();
    // The unscoped counter moving shows the offsets write was seen.
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        everything.wait_for(|rev| *rev != all_seen),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(*assignments.borrow(), seen, "woken by an offsets write");
    store.put("assignments/r", b"{}".to_vec()).await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        assignments.wait_for(|rev| *rev != seen),
    )
    .await
    .unwrap()
    .unwrap();
}

/// etcd keeps every revision until it is compacted, and refuses writes at
/// its quota: a coordinator compacts history older than its interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_history_older_than_the_compaction_interval_is_compacted() {
    use etcd_client::{Client, GetOptions};
    use weir_coordinator::store::KvStore;
    let etcd = Etcd::start();
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint), "/compacted/")
        .await
        .unwrap();
    store.put("k", b"first".to_vec()).await.unwrap();
    let mut reader = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let first = reader.get("/compacted/k", None).await.unwrap();
    let old = first.kvs()[0].mod_revision();
    let at_old = || GetOptions::new().with_revision(old);
    let before = reader.get("/compacted/k", Some(at_old())).await.unwrap();
    assert_eq!(
        before.kvs()[0].value(),
        b"first",
        "readable before compaction"
    );

    store.compact_history_every(std::time::Duration::from_millis(200));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        store.put("k", b"later".to_vec()).await.unwrap();
        match reader.get("/compacted/k", Some(at_old())).await {
            Err(error) => {
                assert!(error.to_string().contains("compacted"), "{error}");
                break;
            }
            Ok(_) => assert!(
                std::time::Instant::now() < deadline,
                "revision {old} never compacted"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        store.get("k").await.unwrap(),
        Some(b"later".to_vec()),
        "the latest value stays"
    );
}
