//! Log levels set with `scope=cluster` (KIP-976): the admin service stores
//! them under `loggers/`, every coordinator applies them to itself
//! ([`follow`]), and each coordinator passes them on to the runners it
//! serves ([`Applied`], used by the control sessions).

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::keys;
use crate::model::ClusterLogLevel;
use crate::store::Store;

/// Every cluster-wide level in the store.
pub async fn cluster_levels(store: &Store) -> Result<Vec<ClusterLogLevel>> {
    Ok(store
        .list(keys::LOGGERS)
        .await?
        .into_iter()
        .filter_map(|(_, value)| serde_json::from_slice(&value).ok())
        .collect())
}

/// Which cluster-wide levels one listener has seen, so each is passed on once.
#[derive(Default)]
pub struct Applied {
    seen: BTreeMap<String, u64>,
}

impl Applied {
    /// The levels set or changed since the last call.
    pub fn fresh(&mut self, levels: Vec<ClusterLogLevel>) -> Vec<ClusterLogLevel> {
        levels
            .into_iter()
            .filter(|level| {
                let newer = self
                    .seen
                    .get(&level.logger)
                    .is_none_or(|seen| *seen < level.last_modified);
                if newer {
                    self.seen.insert(level.logger.clone(), level.last_modified);
                }
                newer
            })
            .collect()
    }
}

/// Applies cluster-wide levels to this coordinator as they change.
pub async fn follow(store: Store, shutdown: CancellationToken) {
    let mut changes = store.changes_under(&[keys::LOGGERS]);
    let mut applied = Applied::default();
    loop {
        match cluster_levels(&store).await {
            Ok(levels) => {
                for level in applied.fresh(levels) {
                    if let Err(error) =
                        weir_connect::logging::loggers().set(&level.logger, &level.level)
                    {
                        tracing::warn!(logger = %level.logger, ?error, "cluster log level not applied");
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "reading cluster log levels failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}
