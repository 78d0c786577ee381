//! The state store: a small key-value trait with two implementations, etcd
//! for distributed mode and a local in-memory store (optionally persisted to
//! a file) for standalone mode. [`conformance`] is one test suite both pass.
//!
//! Consumers are level-triggered: [`KvStore::changes`] only says "something
//! changed", and they re-read what they need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, PutOptions, Txn as EtcdTxn,
    TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use weir_connect::config::{
    ConfigDef, ConfigKey, ConfigMap, ConfigType, Default as ConfigDefault, Importance, Validator,
};

use crate::error::{Error, Result};

/// A condition of a [`Txn`].
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Absent(String),
    Present(String),
    ValueEquals(String, Vec<u8>),
}

/// An operation of a [`Txn`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Put(String, Vec<u8>),
    /// A put tied to this process's session, as [`KvStore::put_ephemeral`].
    PutEphemeral(String, Vec<u8>),
    Delete(String),
    DeletePrefix(String),
}

/// Operations applied atomically, only if every condition holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Txn {
    pub conditions: Vec<Condition>,
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Txn::default()
    }

    pub fn when(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    pub fn put(mut self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.ops.push(Op::Put(key.into(), value));
        self
    }

    pub fn put_ephemeral(mut self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.ops.push(Op::PutEphemeral(key.into(), value));
        self
    }

    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.ops.push(Op::Delete(key.into()));
        self
    }

    pub fn delete_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.ops.push(Op::DeletePrefix(prefix.into()));
        self
    }
}

/// The coordinator's view of its state store. Keys are relative to the
/// store's root; see [`crate::keys`] for the layout.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// The values of `keys`, in their order, read together: a store that
    /// can reads them in as few round trips as it can.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }
    /// Every key under `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// As [`KvStore::list`], possibly from a copy kept current by a watch:
    /// it holds every write this process made (read your writes) and
    /// others' writes once the watch delivered them, as a Kafka Connect
    /// worker's view of its config and status topics does. For answers
    /// such as status pages, never for the conditions of a write.
    async fn list_recent(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.list(prefix).await
    }
    /// As [`KvStore::get_many`], from the same copy as
    /// [`KvStore::list_recent`] and with its guarantees, all at one revision.
    /// A reader woken by [`KvStore::changes_under`] finds the change there.
    async fn get_many_recent(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.get_many(keys).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Applies `txn` if its conditions hold; returns whether it did.
    async fn txn(&self, txn: Txn) -> Result<bool>;
    /// Creates `key` if absent, tied to this process's session: it vanishes
    /// when the process dies (etcd lease) or [`KvStore::close`] is called.
    async fn create_ephemeral(&self, key: &str, value: Vec<u8>) -> Result<bool>;
    /// Puts `key` tied to this process's session (see [`KvStore::create_ephemeral`]).
    async fn put_ephemeral(&self, key: &str, value: Vec<u8>) -> Result<()>;
    /// A counter that moves whenever anything in the store changes.
    fn changes(&self) -> watch::Receiver<u64>;
    /// A counter that moves whenever a key under one of `prefixes` changes,
    /// or changes may have been missed. The default moves on every change;
    /// a store that knows which keys changed moves it only for those, so a
    /// reader is not woken by writes it does not read (offsets, mostly).
    fn changes_under(&self, _prefixes: &[&str]) -> watch::Receiver<u64> {
        self.changes()
    }
    /// Whether this process's session (and so its ephemeral keys) is
    /// certainly still alive.
    fn session_valid(&self) -> bool {
        true
    }
    /// Ends the session: ephemeral keys go away.
    async fn close(&self) -> Result<()>;
}

/// A shared store handle.
pub type Store = Arc<dyn KvStore>;

/// The standalone store: in memory, optionally saving the given prefixes to
/// a JSON file after every change and loading them on start.
pub struct LocalStore {
    inner: Mutex<LocalState>,
    /// The sequence number of the snapshot last written to `file`; held
    /// while writing, so writes never overlap and never go backwards.
    written: Arc<tokio::sync::Mutex<u64>>,
    changes: watch::Sender<u64>,
    file: Option<PathBuf>,
    persisted_prefixes: Vec<String>,
}

#[derive(Default)]
struct LocalState {
    entries: BTreeMap<String, Vec<u8>>,
    ephemeral: BTreeSet<String>,
    /// What the state file holds (or is about to hold).
    saved: Vec<u8>,
    /// Counts snapshots taken for the state file.
    sequence: u64,
}

impl LocalState {
    fn holds(&self, condition: &Condition) -> bool {
        match condition {
            Condition::Absent(key) => !self.entries.contains_key(key),
            Condition::Present(key) => self.entries.contains_key(key),
            Condition::ValueEquals(key, value) => self.entries.get(key) == Some(value),
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Put(key, value) => {
                self.ephemeral.remove(&key);
                self.entries.insert(key, value);
            }
            Op::PutEphemeral(key, value) => {
                self.ephemeral.insert(key.clone());
                self.entries.insert(key, value);
            }
            Op::Delete(key) => {
                self.entries.remove(&key);
                self.ephemeral.remove(&key);
            }
            Op::DeletePrefix(prefix) => {
                self.entries.retain(|key, _| !key.starts_with(&prefix));
                self.ephemeral.retain(|key| !key.starts_with(&prefix));
            }
        }
    }
}

impl LocalStore {
    /// A store that lives only in memory.
    pub fn in_memory() -> Self {
        LocalStore {
            inner: Mutex::new(LocalState::default()),
            written: Arc::new(tokio::sync::Mutex::new(0)),
            changes: watch::channel(0).0,
            file: None,
            persisted_prefixes: Vec::new(),
        }
    }

    /// A store whose keys under `prefixes` survive restarts in `file`.
    pub fn persistent(file: PathBuf, prefixes: &[&str]) -> Result<Self> {
        let mut state = LocalState::default();
        match std::fs::read(&file) {
            Ok(bytes) => {
                let saved: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes)?;
                for (key, value) in saved {
                    state.entries.insert(key, serde_json::to_vec(&value)?);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Store(format!("reading {}: {e}", file.display()))),
        }
        Ok(LocalStore {
            inner: Mutex::new(state),
            written: Arc::new(tokio::sync::Mutex::new(0)),
            changes: watch::channel(0).0,
            file: Some(file),
            persisted_prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        })
    }

    /// Runs `change` under the lock; if it changed anything, saves the state
    /// file durably (off the async workers) and then notifies.
    async fn mutate<T>(&self, change: impl FnOnce(&mut LocalState) -> (T, bool)) -> Result<T> {
        let (result, pending) = {
            let mut state = self
                .inner
                .lock()
                .map_err(|_| Error::Internal("local store lock poisoned".into()))?;
            let (result, changed) = change(&mut state);
            if !changed {
                return Ok(result);
            }
            // Skipped when no persisted key changed.
            let mut pending = None;
            if let Some(file) = &self.file {
                let snapshot = self.snapshot(&state)?;
                if snapshot != state.saved {
                    state.sequence += 1;
                    state.saved.clone_from(&snapshot);
                    pending = Some((file.clone(), state.sequence, snapshot));
                }
            }
            (result, pending)
        };
        if let Some((file, sequence, snapshot)) = pending {
            let mut written = self.written.clone().lock_owned().await;
            // A later snapshot, which holds this change too, may already be on disk.
            if sequence > *written {
                // The guard moves into the write, so it is held until the file
                // is on disk even if this caller goes away.
                tokio::task::spawn_blocking(move || {
                    save_durably(&file, &snapshot)?;
                    *written = sequence;
                    Ok::<(), Error>(())
                })
                .await
                .map_err(|e| Error::Internal(format!("state file writer panicked: {e}")))??;
            }
        }
        self.changes.send_modify(|revision| *revision += 1);
        Ok(result)
    }

    fn snapshot(&self, state: &LocalState) -> Result<Vec<u8>> {
        let mut saved = BTreeMap::new();
        for (key, value) in &state.entries {
            if self.persisted_prefixes.iter().any(|p| key.starts_with(p)) {
                let json: serde_json::Value = serde_json::from_slice(value)?;
                saved.insert(key.clone(), json);
            }
        }
        Ok(serde_json::to_vec_pretty(&saved)?)
    }

    fn read<T>(&self, read: impl FnOnce(&LocalState) -> T) -> Result<T> {
        let state = self
            .inner
            .lock()
            .map_err(|_| Error::Internal("local store lock poisoned".into()))?;
        Ok(read(&state))
    }
}

fn save_durably(file: &std::path::Path, bytes: &[u8]) -> Result<()> {
    weir_connect::durable::replace_file(file, bytes)
        .map_err(|e| Error::Store(format!("writing {}: {e}", file.display())))
}

#[async_trait]
impl KvStore for LocalStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|state| state.entries.get(key).cloned())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.read(|state| {
            keys.iter()
                .map(|key| state.entries.get(key).cloned())
                .collect()
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.read(|state| entries_under(&state.entries, prefix))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.mutate(|state| {
            state.apply(Op::Put(key.to_owned(), value));
            ((), true)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.mutate(|state| {
            let existed = state.entries.contains_key(key);
            state.apply(Op::Delete(key.to_owned()));
            ((), existed)
        })
        .await
    }

    async fn txn(&self, txn: Txn) -> Result<bool> {
        self.mutate(|state| {
            if !txn.conditions.iter().all(|c| state.holds(c)) {
                return (false, false);
            }
            for op in txn.ops {
                state.apply(op);
            }
            (true, true)
        })
        .await
    }

    async fn create_ephemeral(&self, key: &str, value: Vec<u8>) -> Result<bool> {
        self.mutate(|state| {
            if state.entries.contains_key(key) {
                return (false, false);
            }
            state.entries.insert(key.to_owned(), value);
            state.ephemeral.insert(key.to_owned());
            (true, true)
        })
        .await
    }

    async fn put_ephemeral(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.mutate(|state| {
            state.entries.insert(key.to_owned(), value);
            state.ephemeral.insert(key.to_owned());
            ((), true)
        })
        .await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    async fn close(&self) -> Result<()> {
        self.mutate(|state| {
            let keys: Vec<String> = state.ephemeral.iter().cloned().collect();
            let changed = !keys.is_empty();
            for key in keys {
                state.apply(Op::Delete(key));
            }
            ((), changed)
        })
        .await
    }
}

/// Change counters: one for every change, and one per set of key prefixes
/// a reader subscribed to.
struct ChangeFeed {
    all: watch::Sender<u64>,
    scoped: Mutex<Vec<(Vec<String>, watch::Sender<u64>)>>,
}

impl ChangeFeed {
    fn new() -> Self {
        ChangeFeed {
            all: watch::channel(0).0,
            scoped: Mutex::new(Vec::new()),
        }
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.all.subscribe()
    }

    fn subscribe_under(&self, prefixes: &[&str]) -> watch::Receiver<u64> {
        let (sender, receiver) = watch::channel(0);
        if let Ok(mut scoped) = self.scoped.lock() {
            scoped.push((prefixes.iter().map(|p| (*p).to_owned()).collect(), sender));
        }
        receiver
    }

    /// Something changed, or may have: every counter moves.
    fn everything(&self) {
        self.keys(None);
    }

    /// These keys (below the root) changed; `None`: which is unknown.
    fn keys(&self, changed: Option<&[&str]>) {
        self.all.send_modify(|counter| *counter += 1);
        if let Ok(mut scoped) = self.scoped.lock() {
            scoped.retain(|(_, sender)| !sender.is_closed());
            for (prefixes, sender) in scoped.iter() {
                let relevant = changed.is_none_or(|keys| {
                    keys.iter().any(|key| {
                        prefixes
                            .iter()
                            .any(|prefix| key.starts_with(prefix.as_str()))
                    })
                });
                if relevant {
                    sender.send_modify(|counter| *counter += 1);
                }
            }
        }
    }
}

/// The distributed store: etcd under a root prefix, with one session lease
/// per coordinator process for ephemeral keys.
pub struct EtcdStore {
    client: Client,
    root: String,
    lease: i64,
    changes: Arc<ChangeFeed>,
    /// Every key under the root, kept current by the change watch.
    mirror: Arc<std::sync::RwLock<BTreeMap<String, Vec<u8>>>>,
    /// The revision `mirror` is current to (0 while it is not loaded).
    mirrored: Arc<watch::Sender<i64>>,
    /// The revision of this store's latest write: `list_recent` answers
    /// from the mirror once it has caught up with it.
    written: Arc<std::sync::atomic::AtomicI64>,
    shutdown: CancellationToken,
    /// Until when the lease is certainly alive: the send time of the last
    /// keep-alive etcd answered, plus the TTL, less a margin.
    valid_until: Arc<std::sync::Mutex<tokio::time::Instant>>,
}

/// Taken off the lease's known lifetime, for clock drift and slow answers.
const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// Reads per etcd transaction in [`KvStore::get_many`]: under etcd's
/// default `--max-txn-ops` of 128.
const GETS_PER_TXN: usize = 100;

/// How long etcd keeps a dead coordinator's ephemeral keys (its runner
/// registrations and, for the leader, leadership). Long enough that an etcd
/// outage of 10 s (and etcd's restart after it) does not end sessions; runners rejoin another coordinator
/// at once when theirs dies, so only leadership waits this long.
pub const SESSION_TTL_SECS: i64 = 20;

/// How often readers are told to re-read even without a watch event.
const REREAD_INTERVAL: Duration = Duration::from_secs(5);

/// `etcd.compaction.interval.ms`, with its default: Kubernetes' API server
/// compacts its etcd every 5 minutes too.
pub fn compaction_config_def() -> ConfigDef {
    ConfigDef::new().define(
        ConfigKey::new(
            COMPACTION_INTERVAL,
            ConfigType::Long,
            ConfigDefault::Value("300000"),
        )
        .importance(Importance::Low)
        .doc("How often a coordinator compacts etcd's history, keeping this much of it; 0 leaves compaction to etcd's own --auto-compaction-* settings (set them then: without compaction etcd refuses writes once its database reaches its quota). Compaction applies to the whole etcd cluster.")
        .validator(Validator::AtLeast(0)),
    )
}

/// The compaction interval `config` sets; `None` for 0 (off).
pub fn compaction_from_config(config: &ConfigMap) -> std::result::Result<Option<Duration>, String> {
    let millis = compaction_config_def()
        .parse(config)?
        .long(COMPACTION_INTERVAL)?;
    Ok((millis > 0).then(|| Duration::from_millis(millis.unsigned_abs())))
}

const COMPACTION_INTERVAL: &str = "etcd.compaction.interval.ms";

/// How long `list_recent` waits for the mirror to catch up with this
/// store's own latest write before it reads etcd instead.
const MIRROR_WAIT: Duration = Duration::from_secs(1);

/// Pause between failed watch subscriptions.
const WATCH_RETRY: Duration = Duration::from_millis(500);

impl EtcdStore {
    /// Connects, grants the session lease and starts its keep-alive and the
    /// change watch. Both background loops end on [`KvStore::close`].
    pub async fn connect(endpoints: &[String], root: &str) -> Result<Arc<Self>> {
        let mut client = Client::connect(endpoints, None).await?;
        let granted = tokio::time::Instant::now();
        let lease = client.lease_grant(SESSION_TTL_SECS, None).await?.id();
        let root = if root.ends_with('/') {
            root.to_owned()
        } else {
            format!("{root}/")
        };
        let store = Arc::new(EtcdStore {
            client,
            root,
            lease,
            changes: Arc::new(ChangeFeed::new()),
            mirror: Arc::default(),
            mirrored: Arc::new(watch::channel(0).0),
            written: Arc::default(),
            shutdown: CancellationToken::new(),
            valid_until: Arc::new(std::sync::Mutex::new(
                granted + Duration::from_secs(SESSION_TTL_SECS as u64) - LEASE_MARGIN,
            )),
        });
        store.spawn_keep_alive().await?;
        store.spawn_watch().await?;
        Ok(store)
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.root)
    }

    /// Whether the mirror holds this store's latest write, after waiting
    /// at most [`MIRROR_WAIT`] for the watch to deliver it.
    async fn mirror_caught_up(&self) -> bool {
        let written = self.written.load(std::sync::atomic::Ordering::Acquire);
        let mut mirrored = self.mirrored.subscribe();
        matches!(
            tokio::time::timeout(
                MIRROR_WAIT,
                mirrored.wait_for(|revision| *revision > 0 && *revision >= written),
            )
            .await,
            Ok(Ok(_))
        )
    }

    /// Notes the revision a write of this store landed at.
    fn wrote(&self, header: Option<&etcd_client::ResponseHeader>) {
        if let Some(header) = header {
            self.written
                .fetch_max(header.revision(), std::sync::atomic::Ordering::AcqRel);
        }
    }

    /// etcd keeps every revision of every key until it is compacted, and
    /// refuses writes once its database reaches its quota (2 GiB by
    /// default). Weir rewrites statuses, assignments and offsets all the
    /// time, so this drops history older than `interval`, every `interval`,
    /// as Kubernetes' API server does for its etcd: each tick compacts to
    /// the revision the previous tick saw, so a watcher always has at least
    /// `interval` of history to resume from. Compaction is for the whole
    /// etcd cluster, not only this prefix (see `etcd.compaction.interval.ms`).
    /// Ends on [`KvStore::close`].
    pub fn compact_history_every(&self, interval: Duration) {
        let client = self.client.clone();
        let root = self.root.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut seen: Option<i64> = None;
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                if let Some(revision) = seen {
                    match client.clone().compact(revision, None).await {
                        Ok(_) => tracing::debug!(revision, "etcd history compacted"),
                        // Another coordinator compacted as far already.
                        Err(error) if error.to_string().contains("compacted") => {}
                        Err(error) => {
                            tracing::warn!(%error, revision, "etcd compaction failed; trying again next time")
                        }
                    }
                }
                let count_only = GetOptions::new().with_count_only();
                seen = match client.clone().get(root.as_str(), Some(count_only)).await {
                    Ok(response) => response.header().map(|header| header.revision()),
                    Err(error) => {
                        tracing::debug!(%error, "etcd revision not read; compaction waits a tick");
                        None
                    }
                };
            }
        });
    }

    /// Keeps the session lease alive. A keep-alive stream that breaks (etcd
    /// restarting, a network blip) is opened again; only etcd saying the
    /// lease is gone ends the session. Meanwhile `valid_until` says how long
    /// the lease is certainly alive.
    async fn spawn_keep_alive(&self) -> Result<()> {
        let client = self.client.clone();
        let lease = self.lease;
        let first = client.clone().lease_keep_alive(lease).await?;
        let shutdown = self.shutdown.clone();
        // Often, so the lease's known lifetime stays close to its TTL.
        let period = Duration::from_millis((SESSION_TTL_SECS as u64 * 1000) / 10);
        let valid_until = self.valid_until.clone();
        tokio::spawn(async move {
            let mut stream = Some(first);
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let Some((keeper, responses)) = stream.as_mut() else {
                    match client.clone().lease_keep_alive(lease).await {
                        Ok(opened) => stream = Some(opened),
                        Err(error) => {
                            tracing::warn!(%error, "etcd lease keep-alive cannot reach etcd; retrying")
                        }
                    }
                    continue;
                };
                let sent = tokio::time::Instant::now();
                if let Err(error) = keeper.keep_alive().await {
                    tracing::warn!(%error, "etcd lease keep-alive failed; reconnecting");
                    stream = None;
                    continue;
                }
                match tokio::time::timeout(period, responses.message()).await {
                    Ok(Ok(Some(response))) if response.ttl() > 0 => {
                        let until =
                            sent + Duration::from_secs(response.ttl() as u64) - LEASE_MARGIN;
                        if let Ok(mut valid) = valid_until.lock() {
                            *valid = until;
                        }
                    }
                    Ok(Ok(Some(_))) => {
                        tracing::error!(
                            "etcd session lease expired; this coordinator lost its ephemeral keys"
                        );
                        shutdown.cancel();
                        break;
                    }
                    Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                        tracing::warn!("etcd lease keep-alive got no answer; reconnecting");
                        stream = None;
                    }
                }
            }
        });
        Ok(())
    }

    /// Watches the root prefix: moves the change counter on every event and
    /// keeps the mirror (`list_recent`) current. The mirror is loaded first
    /// and the watch starts right after its revision. A watch that fails or
    /// ends is re-subscribed after the last event applied; if that was
    /// compacted away, the mirror is loaded again and the watch starts after
    /// it. The counter also moves every [`REREAD_INTERVAL`] so readers
    /// re-read even if an event was missed.
    async fn spawn_watch(&self) -> Result<()> {
        let client = self.client.clone();
        let root = self.root.clone();
        let changes = self.changes.clone();
        let shutdown = self.shutdown.clone();
        let mirror = self.mirror.clone();
        let mirrored = self.mirrored.clone();
        // The first load and subscription must work, so a bad endpoint fails start-up.
        let loaded = load_mirror(&client, &root, &mirror, &mirrored).await?;
        let first = client
            .clone()
            .watch(
                root.as_str(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(loaded + 1),
                ),
            )
            .await?;
        tokio::spawn(async move {
            let mut stream = Some(first);
            // The revision of the last event applied to the mirror (or of its load).
            let mut last_revision: i64 = loaded;
            let mut reread = tokio::time::interval_at(
                tokio::time::Instant::now() + REREAD_INTERVAL,
                REREAD_INTERVAL,
            );
            reread.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let Some(active) = stream.as_mut() else {
                    if last_revision == 0 {
                        match load_mirror(&client, &root, &mirror, &mirrored).await {
                            Ok(revision) => last_revision = revision,
                            Err(error) => {
                                tracing::warn!(%error, "etcd mirror reload failed; retrying");
                                tokio::time::sleep(WATCH_RETRY).await;
                                continue;
                            }
                        }
                    }
                    let options = WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(last_revision + 1);
                    let mut watcher = client.clone();
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        subscribed = watcher.watch(root.as_str(), Some(options)) => match subscribed {
                            Ok(resumed) => {
                                tracing::info!(from_revision = last_revision + 1, "etcd watch re-subscribed");
                                stream = Some(resumed);
                                // Whatever happened meanwhile: re-read.
                                changes.everything();
                            }
                            Err(error) => {
                                tracing::warn!(%error, "etcd watch re-subscribe failed; retrying");
                                tokio::time::sleep(WATCH_RETRY).await;
                            }
                        },
                    }
                    continue;
                };
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = reread.tick() => changes.everything(),
                    message = active.message() => match message {
                        Ok(Some(response)) => {
                            if response.compact_revision() > 0 {
                                // Resuming after our revision is impossible: load afresh.
                                last_revision = 0;
                                mirrored.send_replace(0);
                                stream = None;
                                changes.everything();
                                continue;
                            }
                            let mut keys: Vec<String> = Vec::new();
                            {
                                let mut entries = mirror
                                    .write()
                                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                                for event in response.events() {
                                    let Some(kv) = event.kv() else { continue };
                                    let Some(key) = kv
                                        .key_str()
                                        .ok()
                                        .and_then(|key| key.strip_prefix(root.as_str()))
                                    else {
                                        continue;
                                    };
                                    match event.event_type() {
                                        EventType::Put => {
                                            entries.insert(key.to_owned(), kv.value().to_vec());
                                        }
                                        EventType::Delete => {
                                            entries.remove(key);
                                        }
                                    }
                                    last_revision = last_revision.max(kv.mod_revision());
                                    keys.push(key.to_owned());
                                }
                            }
                            mirrored.send_replace(last_revision);
                            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                            changes.keys(Some(&keys));
                        }
                        Ok(None) => {
                            tracing::warn!("etcd watch ended; re-subscribing");
                            stream = None;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "etcd watch failed; re-subscribing");
                            stream = None;
                            tokio::time::sleep(WATCH_RETRY).await;
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Cancelled when the session ends (lease lost or closed).
    pub fn session_ended(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// The keys under `prefix` of a sorted copy of the store, and their values:
/// the local store's `list` and the etcd mirror's `list_recent`.
fn entries_under(entries: &BTreeMap<String, Vec<u8>>, prefix: &str) -> Vec<(String, Vec<u8>)> {
    entries
        .range(prefix.to_owned()..)
        .take_while(|(key, _)| key.starts_with(prefix))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Reads every key under `root` into `mirror` and returns the revision
/// read at (never 0: etcd's revisions start at 1).
async fn load_mirror(
    client: &Client,
    root: &str,
    mirror: &std::sync::RwLock<BTreeMap<String, Vec<u8>>>,
    mirrored: &watch::Sender<i64>,
) -> Result<i64> {
    let response = client
        .clone()
        .get(root, Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = response
        .header()
        .map_or(1, |header| header.revision().max(1));
    let entries: BTreeMap<String, Vec<u8>> = response
        .kvs()
        .iter()
        .filter_map(|kv| {
            let key = kv.key_str().ok()?.strip_prefix(root)?;
            Some((key.to_owned(), kv.value().to_vec()))
        })
        .collect();
    *mirror
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = entries;
    mirrored.send_replace(revision);
    Ok(revision)
}

#[async_trait]
impl KvStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let response = self.client.clone().get(self.full(key), None).await?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// One transaction of gets per [`GETS_PER_TXN`] keys: one round trip
    /// each, where gets one by one cost one per key.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(GETS_PER_TXN) {
            let gets: Vec<TxnOp> = chunk
                .iter()
                .map(|key| TxnOp::get(self.full(key), None))
                .collect();
            let response = self
                .client
                .clone()
                .txn(EtcdTxn::new().and_then(gets))
                .await?;
            let answers = response.op_responses();
            if answers.len() != chunk.len() {
                return Err(Error::Internal(format!(
                    "etcd answered {} of {} reads",
                    answers.len(),
                    chunk.len()
                )));
            }
            for answer in answers {
                match answer {
                    TxnOpResponse::Get(got) => {
                        values.push(got.kvs().first().map(|kv| kv.value().to_vec()));
                    }
                    _ => return Err(Error::Internal("etcd answered a read with a write".into())),
                }
            }
        }
        Ok(values)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(etcd_client::SortTarget::Key, etcd_client::SortOrder::Ascend);
        let response = self
            .client
            .clone()
            .get(self.full(prefix), Some(options))
            .await?;
        response
            .kvs()
            .iter()
            .map(|kv| {
                let key = kv
                    .key_str()
                    .map_err(|e| Error::Store(e.to_string()))?
                    .strip_prefix(&self.root)
                    .unwrap_or_default()
                    .to_owned();
                Ok((key, kv.value().to_vec()))
            })
            .collect()
    }

    /// From the mirror once it holds this store's latest write; waits a
    /// little for the watch to deliver it, else reads etcd.
    async fn list_recent(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        if !self.mirror_caught_up().await {
            return self.list(prefix).await;
        }
        let mirror = self
            .mirror
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(entries_under(&mirror, prefix))
    }

    async fn get_many_recent(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if !self.mirror_caught_up().await {
            return self.get_many(keys).await;
        }
        let mirror = self
            .mirror
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(keys.iter().map(|key| mirror.get(key).cloned()).collect())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let response = self.client.clone().put(self.full(key), value, None).await?;
        self.wrote(response.header());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let response = self.client.clone().delete(self.full(key), None).await?;
        self.wrote(response.header());
        Ok(())
    }

    async fn txn(&self, txn: Txn) -> Result<bool> {
        let compares: Vec<Compare> = txn
            .conditions
            .iter()
            .map(|condition| match condition {
                Condition::Absent(key) => Compare::version(self.full(key), CompareOp::Equal, 0),
                Condition::Present(key) => Compare::version(self.full(key), CompareOp::Greater, 0),
                Condition::ValueEquals(key, value) => {
                    Compare::value(self.full(key), CompareOp::Equal, value.clone())
                }
            })
            .collect();
        let ops: Vec<TxnOp> = txn
            .ops
            .into_iter()
            .map(|op| match op {
                Op::Put(key, value) => TxnOp::put(self.full(&key), value, None),
                Op::PutEphemeral(key, value) => TxnOp::put(
                    self.full(&key),
                    value,
                    Some(PutOptions::new().with_lease(self.lease)),
                ),
                Op::Delete(key) => TxnOp::delete(self.full(&key), None),
                Op::DeletePrefix(prefix) => {
                    TxnOp::delete(self.full(&prefix), Some(DeleteOptions::new().with_prefix()))
                }
            })
            .collect();
        let response = self
            .client
            .clone()
            .txn(EtcdTxn::new().when(compares).and_then(ops))
            .await?;
        if response.succeeded() {
            self.wrote(response.header());
        }
        Ok(response.succeeded())
    }

    async fn create_ephemeral(&self, key: &str, value: Vec<u8>) -> Result<bool> {
        let full = self.full(key);
        let put = TxnOp::put(
            full.as_str(),
            value,
            Some(PutOptions::new().with_lease(self.lease)),
        );
        let response = self
            .client
            .clone()
            .txn(
                EtcdTxn::new()
                    .when([Compare::version(full.as_str(), CompareOp::Equal, 0)])
                    .and_then([put]),
            )
            .await?;
        if response.succeeded() {
            self.wrote(response.header());
        }
        Ok(response.succeeded())
    }

    async fn put_ephemeral(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let response = self
            .client
            .clone()
            .put(
                self.full(key),
                value,
                Some(PutOptions::new().with_lease(self.lease)),
            )
            .await?;
        self.wrote(response.header());
        Ok(())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changes_under(&self, prefixes: &[&str]) -> watch::Receiver<u64> {
        self.changes.subscribe_under(prefixes)
    }

    fn session_valid(&self) -> bool {
        !self.shutdown.is_cancelled()
            && self
                .valid_until
                .lock()
                .is_ok_and(|until| tokio::time::Instant::now() < *until)
    }

    async fn close(&self) -> Result<()> {
        self.shutdown.cancel();
        self.client.clone().lease_revoke(self.lease).await?;
        Ok(())
    }
}

/// One behavioural suite every [`KvStore`] must pass. Call it with a store
/// whose root is empty.
pub mod conformance {
    use super::*;

    fn fail(what: &str) -> Error {
        Error::Internal(format!("conformance: {what}"))
    }

    fn check(ok: bool, what: &str) -> Result<()> {
        if ok { Ok(()) } else { Err(fail(what)) }
    }

    /// Runs every check; the error names the first that failed.
    pub async fn run(store: &dyn KvStore) -> Result<()> {
        let mut changes = store.changes();
        let before = *changes.borrow_and_update();

        check(
            store.get("a/missing").await?.is_none(),
            "missing key reads as none",
        )?;
        store.put("a/1", b"one".to_vec()).await?;
        store.put("a/2", b"two".to_vec()).await?;
        check(
            store
                .get_many_recent(&["a/2".into(), "a/missing".into(), "a/1".into()])
                .await?
                == vec![Some(b"two".to_vec()), None, Some(b"one".to_vec())],
            "get_many_recent reads this process's writes, in order",
        )?;
        store.put("b/1", b"other".to_vec()).await?;
        check(
            store.get("a/1").await? == Some(b"one".to_vec()),
            "put then get",
        )?;
        // A copy kept by a watch still reads this process's own writes.
        check(
            store.list_recent("a/").await?
                == vec![
                    ("a/1".into(), b"one".to_vec()),
                    ("a/2".into(), b"two".to_vec()),
                ],
            "list_recent holds this process's puts, by key",
        )?;
        store.delete("a/2").await?;
        check(
            store.list_recent("a/").await? == vec![("a/1".into(), b"one".to_vec())],
            "list_recent drops a deleted key",
        )?;
        store.put("a/2", b"two".to_vec()).await?;
        check(
            store
                .get_many(&["a/2".into(), "a/missing".into(), "a/1".into()])
                .await?
                == vec![Some(b"two".to_vec()), None, Some(b"one".to_vec())],
            "get_many reads each key, in order",
        )?;
        // More keys than one etcd transaction takes.
        let many: Vec<String> = (0..250).map(|i| format!("a/{}", i % 3)).collect();
        let read = store.get_many(&many).await?;
        check(
            read.len() == 250
                && read[0].is_none()
                && read[1] == Some(b"one".to_vec())
                && read[248] == Some(b"two".to_vec()),
            "get_many of 250 keys",
        )?;
        let listed = store.list("a/").await?;
        check(
            listed
                == vec![
                    ("a/1".into(), b"one".to_vec()),
                    ("a/2".into(), b"two".to_vec()),
                ],
            "list returns the prefix only, sorted",
        )?;

        let created = store
            .txn(
                Txn::new()
                    .when(Condition::Absent("a/1".into()))
                    .put("a/3", b"x".to_vec()),
            )
            .await?;
        check(!created, "txn with a failing condition is refused")?;
        check(
            store.get("a/3").await?.is_none(),
            "refused txn writes nothing",
        )?;
        let applied = store
            .txn(
                Txn::new()
                    .when(Condition::Present("a/1".into()))
                    .when(Condition::ValueEquals("a/2".into(), b"two".to_vec()))
                    .when(Condition::Absent("a/3".into()))
                    .put("a/3", b"three".to_vec())
                    .delete("b/1"),
            )
            .await?;
        check(applied, "txn with holding conditions applies")?;
        check(
            store.get("a/3").await? == Some(b"three".to_vec()),
            "txn put",
        )?;
        check(store.get("b/1").await?.is_none(), "txn delete")?;
        check(
            store.txn(Txn::new().delete_prefix("a/")).await?,
            "unconditional txn applies",
        )?;
        check(store.list("a/").await?.is_empty(), "txn delete prefix")?;

        check(
            store.create_ephemeral("e/1", b"me".to_vec()).await?,
            "create ephemeral",
        )?;
        check(
            !store.create_ephemeral("e/1", b"you".to_vec()).await?,
            "create ephemeral is exclusive",
        )?;
        store.put_ephemeral("e/2", b"also".to_vec()).await?;
        store.delete("e/2").await?;
        check(store.get("e/2").await?.is_none(), "delete")?;

        tokio::time::timeout(
            Duration::from_secs(10),
            changes.wait_for(|rev| *rev != before),
        )
        .await
        .map_err(|_| fail("changes are notified"))?
        .map_err(|_| fail("change channel open"))?;

        let mut scoped = store.changes_under(&["watched/"]);
        let seen = *scoped.borrow_and_update();
        store.put("watched/x", b"1".to_vec()).await?;
        tokio::time::timeout(Duration::from_secs(10), scoped.wait_for(|rev| *rev != seen))
            .await
            .map_err(|_| fail("a change under a watched prefix is notified"))?
            .map_err(|_| fail("scoped change channel open"))?;

        store.close().await?;
        check(
            store.get("e/1").await?.is_none(),
            "close removes ephemeral keys",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_passes_conformance() {
        conformance::run(&LocalStore::in_memory()).await.unwrap();
    }

    #[tokio::test]
    async fn persistent_local_store_keeps_only_its_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        {
            let store = LocalStore::persistent(file.clone(), &["connectors/"]).unwrap();
            store
                .put("connectors/a/config", br#"{"k":"v"}"#.to_vec())
                .await
                .unwrap();
            store
                .put("status/connectors/a", br#"{"state":"RUNNING"}"#.to_vec())
                .await
                .unwrap();
        }
        let store = LocalStore::persistent(file, &["connectors/"]).unwrap();
        let saved = store.get("connectors/a/config").await.unwrap().unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&saved).unwrap()["k"],
            "v"
        );
        assert!(store.get("status/connectors/a").await.unwrap().is_none());
    }
}
