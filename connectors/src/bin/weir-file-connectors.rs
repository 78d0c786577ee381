//! `weir-file-connectors`: the built-in FileStreamSource and FileStreamSink,
//! the same code, served as a sidecar over connector protocol v2. It
//! listens on the Unix socket in `WEIR_SIDECAR_SOCKET` (set by the runner
//! that launches it) or on the TCP address in `WEIR_SIDECAR_LISTEN`.
//!
//! An argument, if given, is a label printed in the ready line (it tells
//! several instances apart in `ps`).
//!
//! The classes are `org.weir.connect.file.SidecarFileStreamSourceConnector`
//! and `…SidecarFileStreamSinkConnector` (aliases `SidecarFileStreamSource`
//! and `SidecarFileStreamSink`), so they can run beside the built-ins.

use std::sync::Arc;

use weir_connect::file::{FileStreamSink, FileStreamSource};
use weir_connect::sdk::{Renamed, Sidecar};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let sidecar = Sidecar::new(vec![
        Arc::new(Renamed::new(
            "org.weir.connect.file.SidecarFileStreamSourceConnector",
            Arc::new(FileStreamSource),
        )),
        Arc::new(Renamed::new(
            "org.weir.connect.file.SidecarFileStreamSinkConnector",
            Arc::new(FileStreamSink),
        )),
    ]);
    let shutdown = async {
        weir_connect::process::stop_signal().await;
    };
    let label = std::env::args().nth(1).unwrap_or_default();
    if let Ok(socket) = std::env::var("WEIR_SIDECAR_SOCKET") {
        println!("weir-file-connectors {label} listening on {socket}");
        sidecar.serve_unix(socket.as_ref(), shutdown).await
    } else if let Ok(listen) = std::env::var("WEIR_SIDECAR_LISTEN") {
        println!("weir-file-connectors {label} listening on {listen}");
        sidecar.serve_addr(listen.parse()?, shutdown).await
    } else {
        Err(
            "set WEIR_SIDECAR_SOCKET (a Unix socket path) or WEIR_SIDECAR_LISTEN (host:port)"
                .into(),
        )
    }
}
