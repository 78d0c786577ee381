//! `weir-conformance`: runs the connector conformance kit against a sidecar
//! that is already listening, in any language.
//!
//! ```text
//! weir-conformance --address unix:/tmp/my.sock \
//!     --source com.example.MySource --source-config file=/tmp/in.txt --source-config topic=t \
//!     --sink com.example.MySink --sink-config file=/tmp/out.txt
//! ```
//!
//! Prints one line per check and ends with `N passed, M failed`; exits 1 if
//! any check failed.

use std::collections::HashMap;
use std::time::Duration;

use clap::Parser;
use weir_connect::conformance::{self, Target};
use weir_connect::liveness::sidecar_endpoint;

#[derive(Parser, Debug)]
#[command(
    name = "weir-conformance",
    version,
    about = "Weir's connector conformance kit"
)]
struct Args {
    /// Where the sidecar listens: `unix:/path.sock` or `http://host:port`.
    #[arg(long)]
    address: String,
    /// A source connector class to test.
    #[arg(long)]
    source: Option<String>,
    /// A `key=value` of the source's config (repeatable). The source must
    /// have at least four records to give.
    #[arg(long = "source-config")]
    source_config: Vec<String>,
    /// A sink connector class to test.
    #[arg(long)]
    sink: Option<String>,
    /// A `key=value` of the sink's config (repeatable).
    #[arg(long = "sink-config")]
    sink_config: Vec<String>,
    /// How long the idle check holds a source stream idle, in seconds.
    #[arg(long = "idle-seconds", default_value_t = 10)]
    idle_seconds: u64,
}

fn config(pairs: &[String]) -> Result<HashMap<String, String>, String> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("{pair} is not key=value"))
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let target = Target {
        source: match args.source {
            Some(class) => Some((class, config(&args.source_config)?)),
            None => None,
        },
        sink: match args.sink {
            Some(class) => Some((class, config(&args.sink_config)?)),
            None => None,
        },
        idle: Duration::from_secs(args.idle_seconds),
    };
    // The runner's transport settings, so the idle check sees what a runner sees.
    let endpoint = sidecar_endpoint(tonic::transport::Endpoint::from_static(
        "http://sidecar.invalid",
    ));
    let channel = match args.address.strip_prefix("unix:") {
        Some(path) => {
            let path = path.to_owned();
            endpoint
                .connect_with_connector(tower::service_fn(move |_| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await?
        }
        None => {
            sidecar_endpoint(tonic::transport::Endpoint::from_shared(
                args.address.clone(),
            )?)
            .connect()
            .await?
        }
    };
    let checks = conformance::run(&channel, &target).await;
    let failed = checks.iter().filter(|c| c.outcome.is_err()).count();
    for check in &checks {
        match &check.outcome {
            Ok(()) => println!("ok      {}", check.name),
            Err(reason) => println!("FAILED  {}: {reason}", check.name),
        }
    }
    println!("{} passed, {failed} failed", checks.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
