//! The runner process: joins a coordinator over the control protocol (telling
//! it which plugins it has), keeps its connector instances and tasks equal to
//! the latest assignment, and forwards what they report: connector and task
//! status, task configs, topics and committed offsets. If the coordinator
//! connection is lost, the runner joins the next with backoff; once its lease
//! lapses, everything is stopped (another runner may be given it).
//!
//! In two halves:
//! - `session`: the [`Runner`] and its sessions with coordinators: joining,
//!   heartbeats and the lease, receiving assignments and requests, reporting.
//! - `assignment`: applying an assignment: which connector instances and
//!   tasks to start, stop or keep, fencing, and the bookkeeping of what runs;
//!   tested without a coordinator. It starts them through `launcher`, which
//!   resolves plugins and config providers and spawns them for real.

mod assignment;
mod launcher;
mod session;

pub use session::{Runner, RunnerConfig, parse_coordinators};
