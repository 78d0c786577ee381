//! The embedded development broker: librdkafka's mock cluster, which speaks
//! the real Kafka protocol, behind a small proxy on a chosen loopback port.
//!
//! The mock cluster listens on an ephemeral port and cannot create topics on
//! request (no CreateTopics); it auto-creates unknown topics with four
//! partitions. The proxy gives it a fixed address (the mock is told to
//! advertise the proxy's port) and, on every Metadata request, first creates
//! the topics it names with one partition — the default of a Kafka broker —
//! so record order within a topic is kept, as with `num.partitions=1`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

const METADATA_API_KEY: i16 = 3;
/// Requests larger than this are not Metadata requests worth parsing.
const MAX_FRAME: usize = 100 * 1024 * 1024;

/// A running embedded broker.
pub struct DevKafka {
    address: SocketAddr,
    shutdown: CancellationToken,
    mock: Arc<Mock>,
}

struct Mock {
    /// Owns the mock cluster (created through `test.mock.num.brokers`).
    handle: BaseProducer,
    created: Mutex<HashSet<String>>,
}

impl Mock {
    fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let cluster = self
            .handle
            .client()
            .mock_cluster()
            .ok_or_else(|| Error::Internal("the mock cluster is gone".into()))?;
        if let Ok(mut created) = self.created.lock() {
            created.insert(name.to_owned());
        }
        cluster.create_topic(name, partitions, 1)?;
        Ok(())
    }

    fn ensure_topics(&self, names: Vec<String>) {
        let Some(cluster) = self.handle.client().mock_cluster() else {
            return;
        };
        let Ok(mut created) = self.created.lock() else {
            return;
        };
        for name in names {
            if name.is_empty() || !created.insert(name.clone()) {
                continue;
            }
            match cluster.create_topic(&name, 1, 1) {
                Ok(()) => tracing::debug!(topic = %name, "dev broker created topic"),
                Err(error) => tracing::debug!(topic = %name, %error, "dev broker topic exists"),
            }
        }
    }
}

impl DevKafka {
    /// Starts the broker reachable at `127.0.0.1:port` (0 picks a free port).
    pub async fn start(port: u16) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| Error::Config(format!("binding 127.0.0.1:{port}: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let handle: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .set("log_level", "3")
            .create()?;
        let upstream = handle
            .client()
            .mock_cluster()
            .map(|cluster| cluster.bootstrap_servers())
            .ok_or_else(|| Error::Internal("librdkafka did not create a mock cluster".into()))?;
        advertise(&handle, address.port())?;
        let mock = Arc::new(Mock {
            handle,
            created: Mutex::new(HashSet::new()),
        });
        let shutdown = CancellationToken::new();
        let accept_shutdown = shutdown.clone();
        let accepted_mock = mock.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = accept_shutdown.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                match accepted {
                    Ok((client, _)) => {
                        let upstream = upstream.clone();
                        let mock = accepted_mock.clone();
                        let stop = accept_shutdown.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                () = stop.cancelled() => {}
                                result = proxy(client, &upstream, mock) => {
                                    if let Err(error) = result {
                                        tracing::debug!(%error, "dev broker connection closed");
                                    }
                                }
                            }
                        });
                    }
                    Err(error) => tracing::warn!(%error, "dev broker accept failed"),
                }
            }
            // The mock cluster lives as long as this loop (or the handle).
            drop(accepted_mock);
        });
        tracing::info!(bootstrap = %address, "embedded Kafka broker (librdkafka mock cluster) listening");
        Ok(DevKafka {
            address,
            shutdown,
            mock,
        })
    }

    /// Creates a topic with `partitions` partitions now, which clients
    /// cannot ask of this broker (every topic they name gets one).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        self.mock.create_topic(name, partitions)
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap_servers(&self) -> String {
        self.address.to_string()
    }

    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for DevKafka {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Points the mock broker's advertised address at the proxy.
#[allow(unsafe_code)] // librdkafka's mock API has no safe binding for this call.
fn advertise(handle: &BaseProducer, port: u16) -> Result<()> {
    let host = std::ffi::CString::new("127.0.0.1").map_err(|e| Error::Internal(e.to_string()))?;
    // SAFETY: the client pointer is valid for the lifetime of `handle`; the
    // mock cluster it owns was checked to exist above; librdkafka copies `host`.
    unsafe {
        let cluster = rdkafka_sys::rd_kafka_handle_mock_cluster(handle.client().native_ptr());
        if cluster.is_null() {
            return Err(Error::Internal("no mock cluster".into()));
        }
        rdkafka_sys::rd_kafka_mock_broker_set_host_port(cluster, 1, host.as_ptr(), i32::from(port));
    }
    Ok(())
}

/// Relays one client connection, looking into each request it sends.
async fn proxy(client: TcpStream, upstream: &str, mock: Arc<Mock>) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = async {
        let mut frame = Vec::new();
        loop {
            let mut size = [0u8; 4];
            if client_read.read_exact(&mut size).await.is_err() {
                return server_write.shutdown().await;
            }
            let length = usize::try_from(i32::from_be_bytes(size))
                .unwrap_or(0)
                .min(MAX_FRAME);
            frame.resize(length, 0);
            client_read.read_exact(&mut frame).await?;
            if let Some(topics) = metadata_topics(&frame) {
                let mock = mock.clone();
                tokio::task::spawn_blocking(move || mock.ensure_topics(topics))
                    .await
                    .map_err(std::io::Error::other)?;
            }
            server_write.write_all(&size).await?;
            server_write.write_all(&frame).await?;
        }
    };
    let responses = async {
        tokio::io::copy(&mut server_read, &mut client_write).await?;
        client_write.shutdown().await
    };
    tokio::try_join!(requests, responses)?;
    Ok(())
}

/// The topic names of a Metadata request frame (without its size prefix).
fn metadata_topics(frame: &[u8]) -> Option<Vec<String>> {
    let mut reader = Reader {
        bytes: frame,
        at: 0,
    };
    let api_key = reader.i16()?;
    if api_key != METADATA_API_KEY {
        return None;
    }
    let version = reader.i16()?;
    reader.skip(4)?; // correlation id
    let client_id = reader.i16()?;
    if client_id > 0 {
        reader.skip(client_id as usize)?;
    }
    let flexible = version >= 9;
    if flexible {
        reader.skip_tagged_fields()?;
    }
    let mut names = Vec::new();
    if flexible {
        let count = reader.uvarint()?;
        for _ in 0..count.saturating_sub(1) {
            if version >= 10 {
                reader.skip(16)?; // topic id
            }
            let length = reader.uvarint()?;
            if length > 0 {
                names.push(reader.string(length as usize - 1)?);
            }
            reader.skip_tagged_fields()?;
        }
    } else {
        let count = reader.i32()?;
        for _ in 0..count.max(0) {
            let length = reader.i16()?;
            if length >= 0 {
                names.push(reader.string(length as usize)?);
            }
        }
    }
    Some(names)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn string(&mut self, n: usize) -> Option<String> {
        self.take(n)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    fn skip_tagged_fields(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()?;
            self.skip(size as usize)?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_topics_of_a_classic_metadata_request() {
        let mut frame = vec![0, 3, 0, 4, 0, 0, 0, 7, 0, 2, b'i', b'd'];
        frame.extend([0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c']);
        assert_eq!(
            metadata_topics(&frame),
            Some(vec!["a".to_owned(), "bc".to_owned()])
        );
    }

    #[test]
    fn reads_topics_of_a_flexible_metadata_request() {
        let mut frame = vec![0, 3, 0, 12, 0, 0, 0, 7, 0xff, 0xff, 0];
        frame.push(2); // one topic
        frame.extend([0u8; 16]);
        frame.extend([4, b'a', b'b', b'c', 0]);
        frame.extend([1, 0, 0]);
        assert_eq!(metadata_topics(&frame), Some(vec!["abc".to_owned()]));
    }

    #[test]
    fn ignores_other_requests_and_garbage() {
        assert_eq!(metadata_topics(&[0, 0, 0, 9, 0, 0, 0, 1, 0, 0]), None);
        assert_eq!(metadata_topics(&[0, 3]), None);
    }
}
