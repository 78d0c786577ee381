//! The REST client of the operator commands: Kafka Connect's REST API only,
//! so they work against Weir and any Kafka Connect cluster. Errors carry
//! Kafka Connect's `{"error_code":…,"message":…}` message.

use std::time::Duration;

use serde_json::Value;

/// Why a command failed; each maps to its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The cluster answered with an error (exit 1).
    #[error("{message} (HTTP {status})")]
    Refused { status: u16, message: String },
    /// Bad local input: a file that cannot be read or parsed (exit 2).
    #[error("{0}")]
    Input(String),
    /// The cluster could not be reached (exit 3).
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

impl OpsError {
    pub fn exit_code(&self) -> i32 {
        match self {
            OpsError::Refused { .. } => 1,
            OpsError::Input(_) => 2,
            OpsError::Unreachable { .. } => 3,
        }
    }
}

pub type Result<T> = std::result::Result<T, OpsError>;

/// A Kafka Connect REST endpoint.
pub struct Rest {
    base: String,
    agent: ureq::Agent,
}

/// Escapes a connector name (or other path segment) for a URL path.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char);
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

impl Rest {
    pub fn new(base: &str) -> Rest {
        Rest {
            base: base.trim_end_matches('/').to_owned(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
        }
    }

    /// Sends a request; the JSON body of a success (`Null` when empty), or
    /// the cluster's error.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let request = self
            .agent
            .request(method, &url)
            .set("Accept", "application/json");
        let outcome = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match outcome {
            Ok(response) => {
                let status = response.status();
                let text = response.into_string().unwrap_or_default();
                Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
            }
            Err(error) => Err(self.failure(error)),
        }
    }

    /// The cluster's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, None).map(|(_, body)| body)
    }

    /// Reads a Server-Sent Events stream, calling `on_event(event, data)`
    /// for each event (after `on_open` once the server answered) until it
    /// returns false or the stream ends.
    pub fn events(
        &self,
        path: &str,
        on_open: impl FnOnce(),
        mut on_event: impl FnMut(&str, &str) -> bool,
    ) -> Result<()> {
        use std::io::BufRead;
        let url = format!("{}{path}", self.base);
        // No overall timeout: the stream lasts as long as the user wants.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .build();
        let response = match agent.get(&url).set("Accept", "text/event-stream").call() {
            Ok(response) => response,
            Err(error) => return Err(self.failure(error)),
        };
        on_open();
        let reader = std::io::BufReader::new(response.into_reader());
        let (mut event, mut data) = (String::new(), String::new());
        for line in reader.lines() {
            let line = line.map_err(|e| OpsError::Unreachable {
                url: self.base.clone(),
                reason: format!("the stream broke: {e}"),
            })?;
            if line.is_empty() {
                if !data.is_empty() && !on_event(&event, &data) {
                    return Ok(());
                }
                event.clear();
                data.clear();
            } else if let Some(value) = line.strip_prefix("event:") {
                event = value.trim_start().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
        Ok(())
    }

    fn failure(&self, error: ureq::Error) -> OpsError {
        match error {
            ureq::Error::Status(status, response) => {
                let text = response.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|body| body["message"].as_str().map(str::to_owned))
                    .unwrap_or(text);
                OpsError::Refused { status, message }
            }
            ureq::Error::Transport(transport) => OpsError::Unreachable {
                url: self.base.clone(),
                reason: transport.to_string(),
            },
        }
    }
}
