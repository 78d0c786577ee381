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
