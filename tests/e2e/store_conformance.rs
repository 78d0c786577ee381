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
