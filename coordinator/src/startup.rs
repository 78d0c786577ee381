//! The startup probe: what tells a coordinator that the process it runs in
//! has finished starting, so that `GET /health` answers 503 `starting` until
//! it has (`weir standalone`: its runner joined, its connector files applied).

use std::sync::Arc;

/// Whether the process serving this REST API has finished starting
/// (`GET /health` answers 503 `starting` until it has).
#[derive(Clone)]
pub struct StartupProbe(pub Arc<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for StartupProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartupProbe")
    }
}
