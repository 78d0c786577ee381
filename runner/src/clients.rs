//! Kafka clients. Turns Kafka Connect's client properties into librdkafka
//! settings and creates clients whose errors name the property the user set.
//!
//! Which properties a client gets (as in Kafka Connect):
//! - task producers: `bootstrap.servers`, the worker's `producer.*`, then the
//!   connector's `producer.override.*`;
//! - task consumers: `consumer.*`, then `consumer.override.*`;
//! - admin clients (topic creation): `admin.*`, then `admin.override.*`;
//! - the worker's own clients (offsets topic, cluster id): the worker's
//!   top-level `security.protocol`, `sasl.*` and `ssl.*` keys.
//!
//! Java-only settings are translated where librdkafka has an equivalent
//! (`sasl.jaas.config`, truststores and keystores, endpoint identification)
//! and rejected with a clear error where it has none (JKS stores, serializer
//! classes, ...). Secrets never appear in an error or a log line.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::watch;
use weir_connect::client::{OverridePolicy, is_secret_key};
use weir_connect::config::ConfigMap;

use crate::error::{Error, Result};

/// Which client the settings are for; it picks the property prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole {
    Producer,
    Consumer,
    Admin,
    /// The worker's own clients: offsets topic and cluster metadata.
    Worker,
}

impl ClientRole {
    fn worker_prefix(self) -> Option<&'static str> {
        match self {
            ClientRole::Producer => Some("producer."),
            ClientRole::Consumer => Some("consumer."),
            ClientRole::Admin => Some("admin."),
            ClientRole::Worker => None,
        }
    }

    fn override_prefix(self) -> Option<&'static str> {
        match self {
            ClientRole::Producer => Some("producer.override."),
            ClientRole::Consumer => Some("consumer.override."),
            ClientRole::Admin => Some("admin.override."),
            ClientRole::Worker => None,
        }
    }
}

/// One client setting and the property it came from, for error messages.
#[derive(Clone)]
struct Setting {
    value: String,
    origin: String,
}

/// Kafka Connect client properties for one client, by their Java names.
#[derive(Clone, Default)]
pub struct ClientSettings {
    entries: BTreeMap<String, Setting>,
}

impl ClientSettings {
    /// Every setting with where it came from, one per line: equal for two
    /// clients exactly when they would be created alike (so they may share
    /// one). Holds secrets in clear: keep it in memory, never log it.
    pub fn identity(&self) -> String {
        let mut identity = String::new();
        for (key, setting) in &self.entries {
            identity.push_str(key);
            identity.push('=');
            identity.push_str(&setting.value);
            identity.push('\0');
            identity.push_str(&setting.origin);
            identity.push('\n');
        }
        identity
    }
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (key, setting) in &self.entries {
            if is_secret_key(key) {
                map.entry(key, &"[hidden]");
            } else {
                map.entry(key, &setting.value);
            }
        }
        map.finish()
    }
}

/// Worker keys that configure the worker's own clients when set at the top level.
fn is_worker_client_key(key: &str) -> bool {
    key == "security.protocol" || key.starts_with("sasl.") || key.starts_with("ssl.")
}

impl ClientSettings {
    /// The settings for `role`, layered from the worker's and the connector's
    /// properties. Connector overrides the policy forbids are an error.
    pub fn layered(
        bootstrap_servers: &str,
        worker: &ConfigMap,
        connector: &ConfigMap,
        role: ClientRole,
        policy: OverridePolicy,
    ) -> Result<Self> {
        let mut settings = ClientSettings::new(bootstrap_servers);
        // Admin clients start from the worker's own client keys, as Kafka
        // Connect's do; producers and consumers take only their prefix.
        if role == ClientRole::Admin {
            for (key, value) in worker {
                if is_worker_client_key(key) {
                    settings.put(key, value, key);
                }
            }
        }
        match role.worker_prefix() {
            Some(prefix) => {
                for (key, value) in worker {
                    if let Some(setting) = key.strip_prefix(prefix)
                        && !setting.starts_with("override.")
                    {
                        settings.put(setting, value, key);
                    }
                }
            }
            None => {
                for (key, value) in worker {
                    if is_worker_client_key(key) {
                        settings.put(key, value, key);
                    }
                }
            }
        }
        if let Some(prefix) = role.override_prefix() {
            if let Some((key, message)) = policy.violations(connector).into_iter().next() {
                return Err(Error::Config(format!("{key}: {message}")));
            }
            for (key, value) in connector {
                if let Some(setting) = key.strip_prefix(prefix) {
                    settings.put(setting, value, key);
                }
            }
        }
        Ok(settings)
    }

    /// Settings with only `bootstrap.servers`.
    pub fn new(bootstrap_servers: &str) -> Self {
        let mut settings = ClientSettings::default();
        settings.set("bootstrap.servers", bootstrap_servers);
        settings
    }

    fn put(&mut self, key: &str, value: &str, origin: &str) {
        self.entries.insert(
            key.to_owned(),
            Setting {
                value: value.to_owned(),
                origin: origin.to_owned(),
            },
        );
    }

    /// Sets a value Weir chooses (it wins over the user's).
    pub fn set(&mut self, key: &str, value: &str) {
        self.put(key, value, key);
    }

    /// Sets a Weir default the user's properties may override.
    pub fn set_default(&mut self, key: &str, value: &str) {
        if !self.entries.contains_key(key) {
            self.set(key, value);
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|s| s.value.as_str())
    }

    /// Kafka Connect's producer defaults, which lose nothing: every replica
    /// acknowledges (`acks=all`), a record is retried until it is delivered
    /// (`delivery.timeout.ms` = the maximum, so a long broker outage only
    /// delays records), and order is kept: by the idempotent producer (up to
    /// 5 requests in flight), or, when the user turns idempotence off, by one
    /// request in flight. Keys are partitioned as Java clients do (murmur2).
    /// Each can be overridden with the usual `producer.*` properties.
    pub fn apply_producer_defaults(&mut self) {
        self.set_default("acks", "all");
        self.set_default("delivery.timeout.ms", &i32::MAX.to_string());
        self.set_default("enable.idempotence", "true");
        let idempotent = self
            .get("enable.idempotence")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        self.set_default(
            "max.in.flight.requests.per.connection",
            if idempotent { "5" } else { "1" },
        );
        self.set_default("partitioner", "murmur2_random");
    }

    /// The librdkafka configuration, translated from the Java properties.
    pub fn to_rdkafka(&self) -> Result<Translated> {
        translate(&self.entries)
    }

    /// Creates a client that reports authentication and TLS failures on
    /// the returned [`ClientFailures`].
    pub fn create<T>(&self) -> Result<(T, ClientFailures)>
    where
        T: FromClientConfigAndContext<WatchedContext>,
    {
        self.create_with(std::convert::identity)
    }

    /// As [`ClientSettings::create`], with a context of the caller's that
    /// wraps Weir's (a producer that counts its own delivery reports).
    pub fn create_with<T, C>(
        &self,
        context: impl FnOnce(WatchedContext) -> C,
    ) -> Result<(T, ClientFailures)>
    where
        C: ClientContext,
        T: FromClientConfigAndContext<C>,
    {
        let translated = self.to_rdkafka()?;
        let (watched, failures) = WatchedContext::new(&translated);
        let client = T::from_config_and_context(&translated.config, context(watched))
            .map_err(|error| translated.creation_error(error))?;
        Ok((client, failures))
    }
}

/// A translated librdkafka configuration and, per librdkafka key, the
/// property it came from.
pub struct Translated {
    pub config: rdkafka::ClientConfig,
    origins: BTreeMap<String, String>,
}

impl Translated {
    fn origin_of(&self, librdkafka_key: &str) -> Option<&str> {
        self.origins.get(librdkafka_key).map(String::as_str)
    }

    /// librdkafka rejects unknown or invalid properties when a client is
    /// created; name the property the user wrote.
    fn creation_error(&self, error: KafkaError) -> Error {
        let message = error.to_string();
        let named = self
            .origins
            .iter()
            .find(|(key, _)| message.contains(&format!("\"{key}\"")))
            .map(|(_, origin)| origin.clone());
        match named {
            Some(origin) => Error::Config(format!(
                "Invalid Kafka client configuration {origin}: {message}"
            )),
            None => Error::Config(format!("Invalid Kafka client configuration: {message}")),
        }
    }

    /// The properties the user set for one concern, for failure messages.
    fn origins_of(&self, librdkafka_keys: &[&str], fallback: &str) -> String {
        let mut named: Vec<&str> = librdkafka_keys
            .iter()
            .filter_map(|key| self.origin_of(key))
            .collect();
        named.dedup();
        if named.is_empty() {
            fallback.to_owned()
        } else {
            named.join(", ")
        }
    }
}

/// Java client settings that librdkafka has no equivalent for.
const JAVA_ONLY: &[&str] = &[
    "key.serializer",
    "value.serializer",
    "key.deserializer",
    "value.deserializer",
    "interceptor.classes",
    "partitioner.class",
    "partitioner.ignore.keys",
    "metric.reporters",
    "metrics.num.samples",
    "metrics.recording.level",
    "metrics.sample.window.ms",
    "auto.include.jmx.reporter",
    "buffer.memory",
    "max.block.ms",
    "max.poll.records",
    "default.api.timeout.ms",
    "exclude.internal.topics",
    "security.providers",
    "ssl.protocol",
    "ssl.enabled.protocols",
    "ssl.provider",
    "ssl.keymanager.algorithm",
    "ssl.trustmanager.algorithm",
    "ssl.secure.random.implementation",
    "ssl.engine.factory.class",
    "sasl.client.callback.handler.class",
    "sasl.login.class",
];

/// Java names librdkafka spells differently.
const RENAMED: &[(&str, &str)] = &[
    ("sasl.mechanism", "sasl.mechanisms"),
    ("max.request.size", "message.max.bytes"),
    ("receive.buffer.bytes", "socket.receive.buffer.bytes"),
    ("send.buffer.bytes", "socket.send.buffer.bytes"),
    ("fetch.max.wait.ms", "fetch.wait.max.ms"),
];

/// Keys handled together after the others: stores and login modules.
const STORE_KEYS: &[&str] = &[
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.keystore.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.key.password",
];

fn one_of(origin: &str, value: &str, allowed: &[&str]) -> Result<String> {
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(value.trim()))
        .map(|a| (*a).to_owned())
        .ok_or_else(|| {
            Error::Config(format!(
                "Invalid value {} for configuration {origin}: String must be one of: {}",
                value.trim(),
                allowed.join(", ")
            ))
        })
}

struct Output {
    config: rdkafka::ClientConfig,
    origins: BTreeMap<String, String>,
}

impl Output {
    fn set(&mut self, key: &str, value: impl Into<String>, origin: &str) {
        self.config.set(key, value.into());
        self.origins.insert(key.to_owned(), origin.to_owned());
    }
}

fn translate(entries: &BTreeMap<String, Setting>) -> Result<Translated> {
    let mut out = Output {
        config: rdkafka::ClientConfig::new(),
        origins: BTreeMap::new(),
    };
    // librdkafka's own log lines go through its log callback, not stderr.
    out.config.set_log_level(RDKafkaLogLevel::Warning);
    for (key, Setting { value, origin }) in entries {
        let key = key.as_str();
        if STORE_KEYS.contains(&key) {
            continue;
        }
        if JAVA_ONLY.contains(&key) {
            return Err(Error::Config(format!(
                "{origin} is a Java client setting that librdkafka, Weir's Kafka client, has no equivalent for; remove it"
            )));
        }
        match key {
            "security.protocol" => {
                let protocol = one_of(
                    origin,
                    value,
                    &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
                )?;
                out.set(key, protocol.to_ascii_lowercase(), origin);
            }
            "sasl.mechanism" => {
                let mechanism = one_of(
                    origin,
                    value,
                    &[
                        "GSSAPI",
                        "PLAIN",
                        "SCRAM-SHA-256",
                        "SCRAM-SHA-512",
                        "OAUTHBEARER",
                    ],
                )?;
                out.set("sasl.mechanisms", mechanism, origin);
            }
            "sasl.jaas.config" => jaas(&mut out, value, origin)?,
            "sasl.login.callback.handler.class" => {
                if !value.trim().ends_with(".OAuthBearerLoginCallbackHandler") {
                    return Err(Error::Config(format!(
                        "{origin}: only org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler (OIDC) is supported; librdkafka cannot load Java classes"
                    )));
                }
                out.set("sasl.oauthbearer.method", "oidc", origin);
            }
            "sasl.oauthbearer.token.endpoint.url" => {
                out.set(key, value.trim(), origin);
                out.set("sasl.oauthbearer.method", "oidc", origin);
            }
            "ssl.endpoint.identification.algorithm" => {
                let algorithm = match value.trim().to_ascii_lowercase().as_str() {
                    "" | "none" => "none",
                    "https" => "https",
                    other => {
                        return Err(Error::Config(format!(
                            "Invalid value {other} for configuration {origin}: must be https or empty"
                        )));
                    }
                };
                out.set(key, algorithm, origin);
            }
            "compression.type" => {
                let codec = one_of(origin, value, &["none", "gzip", "snappy", "lz4", "zstd"])?;
                out.set(key, codec, origin);
            }
            _ => {
                let target = RENAMED
                    .iter()
                    .find(|(java, _)| *java == key)
                    .map_or(key, |(_, native)| native);
                out.set(target, value.as_str(), origin);
            }
        }
    }
    truststore(&mut out, entries)?;
    keystore(&mut out, entries)?;
    Ok(Translated {
        config: out.config,
        origins: out.origins,
    })
}

/// The options of a JAAS login module line:
/// `<class> required key="value" key=value ...;`.
fn parse_jaas(text: &str) -> Option<(String, BTreeMap<String, String>)> {
    let text = text.trim().trim_end_matches(';').trim();
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let mut words: Vec<String> = Vec::new();
    let mut options = BTreeMap::new();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            '=' => {
                // `name = value` as well as `name=value`.
                let name = if word.is_empty() {
                    words.pop().unwrap_or_default()
                } else {
                    std::mem::take(&mut word)
                };
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
                let mut value = String::new();
                if chars.next_if_eq(&'"').is_some() {
                    loop {
                        match chars.next()? {
                            '\\' => value.push(chars.next()?),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                } else {
                    while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                        value.push(c);
                    }
                }
                options.insert(name, value);
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let class = words.first()?.clone();
    Some((class, options))
}

fn jaas(out: &mut Output, value: &str, origin: &str) -> Result<()> {
    let (class, options) = parse_jaas(value).ok_or_else(|| {
        Error::Config(format!(
            "{origin}: not a JAAS login module line (expected `<LoginModule class> required key=\"value\" ...;`)"
        ))
    })?;
    let option = |name: &str| options.get(name).cloned();
    let module = class.rsplit('.').next().unwrap_or(&class);
    match module {
        "PlainLoginModule" | "ScramLoginModule" => {
            let (Some(username), Some(password)) = (option("username"), option("password")) else {
                return Err(Error::Config(format!(
                    "{origin}: {module} needs username and password options"
                )));
            };
            out.set("sasl.username", username, origin);
            out.set("sasl.password", password, origin);
        }
        "OAuthBearerLoginModule" => {
            if let Some(client_id) = option("clientId") {
                out.set("sasl.oauthbearer.method", "oidc", origin);
                out.set("sasl.oauthbearer.client.id", client_id, origin);
                if let Some(secret) = option("clientSecret") {
                    out.set("sasl.oauthbearer.client.secret", secret, origin);
                }
                if let Some(scope) = option("scope") {
                    out.set("sasl.oauthbearer.scope", scope, origin);
                }
            } else if let Some(subject) = option("unsecuredLoginStringClaim_sub") {
                let mut unsecured = format!("principal={subject}");
                if let Some(lifetime) = option("unsecuredLoginLifetimeSeconds") {
                    unsecured.push_str(&format!(" lifeSeconds={lifetime}"));
                }
                out.set("enable.sasl.oauthbearer.unsecure.jwt", "true", origin);
                out.set("sasl.oauthbearer.config", unsecured, origin);
            } else {
                return Err(Error::Config(format!(
                    "{origin}: OAuthBearerLoginModule needs clientId (OIDC) or unsecuredLoginStringClaim_sub"
                )));
            }
        }
        "Krb5LoginModule" => {
            if let Some(keytab) = option("keyTab") {
                out.set("sasl.kerberos.keytab", keytab, origin);
            }
            if let Some(principal) = option("principal") {
                out.set("sasl.kerberos.principal", principal, origin);
            }
            if let Some(service) = option("serviceName") {
                out.set("sasl.kerberos.service.name", service, origin);
            }
        }
        _ => {
            return Err(Error::Config(format!(
                "{origin}: login module {class} is not supported; use PlainLoginModule, ScramLoginModule, OAuthBearerLoginModule or Krb5LoginModule"
            )));
        }
    }
    Ok(())
}

/// What a key or trust store file holds, judged by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreFormat {
    Pem,
    Pkcs12,
    Jks,
}

fn store_format(path: &Path, declared: Option<&str>, type_origin: &str) -> Result<StoreFormat> {
    if let Some(declared) = declared {
        one_of(type_origin, declared, &["JKS", "PKCS12", "PEM"])?;
    }
    let bytes = std::fs::read(path)
        .map_err(|error| Error::Config(format!("cannot read {}: {error}", path.display())))?;
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    Ok(if bytes[start..].starts_with(b"-----BEGIN") {
        StoreFormat::Pem
    } else if bytes.starts_with(&[0xFE, 0xED, 0xFE, 0xED])
        || bytes.starts_with(&[0xCE, 0xCE, 0xCE, 0xCE])
    {
        StoreFormat::Jks
    } else {
        StoreFormat::Pkcs12
    })
}

fn jks_error(origin: &str, path: &str, kind: &str) -> Error {
    Error::Config(format!(
        "{origin}: {path} is a JKS {kind}, which librdkafka cannot read. Convert it with \
         `keytool -importkeystore -srckeystore {path} -srcstoretype JKS -destkeystore {kind}.p12 -deststoretype PKCS12` \
         and set ssl.{kind}.location to the .p12 file and ssl.{kind}.type=PKCS12 \
         (or export the certificates to PEM and set ssl.{kind}.type=PEM)"
    ))
}

fn entry<'a>(entries: &'a BTreeMap<String, Setting>, key: &str) -> Option<&'a Setting> {
    entries.get(key)
}

fn origin_or(entries: &BTreeMap<String, Setting>, key: &str) -> String {
    entry(entries, key).map_or_else(|| key.to_owned(), |s| s.origin.clone())
}

fn existing_file(setting: &Setting) -> Result<&Path> {
    let path = Path::new(setting.value.trim());
    if !path.is_file() {
        return Err(Error::Config(format!(
            "{}: the file {} does not exist",
            setting.origin,
            path.display()
        )));
    }
    Ok(path)
}

fn open_pkcs12(
    path: &Path,
    location_origin: &str,
    password: Option<&Setting>,
    password_key: &str,
) -> Result<openssl::pkcs12::ParsedPkcs12_2> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "{location_origin}: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let secret = password.map_or("", |p| p.value.as_str());
    let password_origin = password.map_or(password_key, |p| p.origin.as_str());
    openssl::pkcs12::Pkcs12::from_der(&bytes)
        .map_err(|_| {
            Error::Config(format!(
                "{location_origin}: {} is not a PKCS12 store",
                path.display()
            ))
        })?
        .parse2(secret)
        .map_err(|_| {
            Error::Config(format!(
                "{location_origin}: cannot open the PKCS12 store {} with {password_origin}: wrong password?",
                path.display()
            ))
        })
}

fn truststore(out: &mut Output, entries: &BTreeMap<String, Setting>) -> Result<()> {
    if let Some(inline) = entry(entries, "ssl.truststore.certificates") {
        out.set("ssl.ca.pem", inline.value.as_str(), &inline.origin);
    }
    let Some(location) = entry(entries, "ssl.truststore.location") else {
        return Ok(());
    };
    let path = existing_file(location)?;
    let declared = entry(entries, "ssl.truststore.type").map(|s| s.value.as_str());
    match store_format(path, declared, &origin_or(entries, "ssl.truststore.type"))? {
        StoreFormat::Jks => Err(jks_error(&location.origin, &location.value, "truststore")),
        StoreFormat::Pem => {
            out.set("ssl.ca.location", location.value.trim(), &location.origin);
            Ok(())
        }
        StoreFormat::Pkcs12 => {
            let parsed = open_pkcs12(
                path,
                &location.origin,
                entry(entries, "ssl.truststore.password"),
                "ssl.truststore.password",
            )?;
            let mut pem = Vec::new();
            let ca = parsed.ca.iter().flatten();
            for cert in parsed.cert.iter().map(|c| &**c).chain(ca) {
                let encoded = cert
                    .to_pem()
                    .map_err(|e| Error::Config(format!("{}: {e}", location.origin)))?;
                pem.extend_from_slice(&encoded);
            }
            if pem.is_empty() {
                return Err(Error::Config(format!(
                    "{}: the PKCS12 store {} holds no certificates",
                    location.origin,
                    path.display()
                )));
            }
            out.set(
                "ssl.ca.pem",
                String::from_utf8_lossy(&pem).into_owned(),
                &location.origin,
            );
            Ok(())
        }
    }
}

fn keystore(out: &mut Output, entries: &BTreeMap<String, Setting>) -> Result<()> {
    if let Some(chain) = entry(entries, "ssl.keystore.certificate.chain") {
        out.set("ssl.certificate.pem", chain.value.as_str(), &chain.origin);
    }
    if let Some(key) = entry(entries, "ssl.keystore.key") {
        out.set("ssl.key.pem", key.value.as_str(), &key.origin);
    }
    let key_password = entry(entries, "ssl.key.password");
    let Some(location) = entry(entries, "ssl.keystore.location") else {
        if let Some(password) = key_password {
            out.set(
                "ssl.key.password",
                password.value.as_str(),
                &password.origin,
            );
        }
        return Ok(());
    };
    let path = existing_file(location)?;
    let declared = entry(entries, "ssl.keystore.type").map(|s| s.value.as_str());
    match store_format(path, declared, &origin_or(entries, "ssl.keystore.type"))? {
        StoreFormat::Jks => Err(jks_error(&location.origin, &location.value, "keystore")),
        StoreFormat::Pem => {
            // One PEM file with the certificate chain and the private key:
            // OpenSSL finds each by its PEM label.
            out.set(
                "ssl.certificate.location",
                location.value.trim(),
                &location.origin,
            );
            out.set("ssl.key.location", location.value.trim(), &location.origin);
            if let Some(password) = key_password {
                out.set(
                    "ssl.key.password",
                    password.value.as_str(),
                    &password.origin,
                );
            }
            Ok(())
        }
        StoreFormat::Pkcs12 => {
            let password = entry(entries, "ssl.keystore.password");
            if let Some(key_password) = key_password
                && Some(key_password.value.as_str()) != password.map(|p| p.value.as_str())
            {
                return Err(Error::Config(format!(
                    "{}: librdkafka opens a PKCS12 keystore with ssl.keystore.password alone; give the key the store's password or use a PEM keystore",
                    key_password.origin
                )));
            }
            open_pkcs12(path, &location.origin, password, "ssl.keystore.password")?;
            out.set(
                "ssl.keystore.location",
                location.value.trim(),
                &location.origin,
            );
            if let Some(password) = password {
                out.set(
                    "ssl.keystore.password",
                    password.value.as_str(),
                    &password.origin,
                );
            }
            Ok(())
        }
    }
}

/// A failure of a client that retrying will not fix: authentication
/// rejected, or the TLS handshake refused.
pub type ClientFailures = watch::Receiver<Option<String>>;

/// The client context every Weir client uses: librdkafka's logs go to
/// `tracing`, and authentication or certificate failures, which librdkafka
/// would otherwise retry forever, are published on [`ClientFailures`].
#[derive(Clone)]
pub struct WatchedContext {
    failures: Arc<watch::Sender<Option<String>>>,
    /// What to name when authentication fails, and when TLS fails.
    sasl_keys: Arc<str>,
    tls_keys: Arc<str>,
}

impl WatchedContext {
    fn new(translated: &Translated) -> (Self, ClientFailures) {
        let (sender, receiver) = watch::channel(None);
        let context = WatchedContext {
            failures: Arc::new(sender),
            sasl_keys: translated
                .origins_of(
                    &[
                        "sasl.username",
                        "sasl.password",
                        "sasl.mechanisms",
                        "security.protocol",
                    ],
                    "sasl.jaas.config",
                )
                .into(),
            tls_keys: translated
                .origins_of(
                    &[
                        "ssl.ca.location",
                        "ssl.ca.pem",
                        "ssl.endpoint.identification.algorithm",
                        "ssl.keystore.location",
                        "ssl.certificate.location",
                        "security.protocol",
                    ],
                    "ssl.truststore.location",
                )
                .into(),
        };
        (context, receiver)
    }

    fn fail(&self, message: String) {
        self.failures.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(message);
                true
            } else {
                false
            }
        });
    }
}

impl ClientContext for WatchedContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as Level;
        match level {
            Level::Emerg | Level::Alert | Level::Critical | Level::Error => {
                tracing::error!(target: "librdkafka", fac, "{log_message}");
            }
            Level::Warning => tracing::warn!(target: "librdkafka", fac, "{log_message}"),
            Level::Notice | Level::Info => {
                tracing::info!(target: "librdkafka", fac, "{log_message}")
            }
            Level::Debug => tracing::debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        match code {
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
                self.fail(format!(
                    "Kafka authentication failed (check {}): {reason}",
                    self.sasl_keys
                ));
            }
            Some(RDKafkaErrorCode::SSL)
                if reason.contains("certificate verify failed")
                    || reason.contains("Certificate verification failed")
                    || reason.contains("verify") =>
            {
                self.fail(format!(
                    "Kafka TLS handshake failed (check {}): {reason}",
                    self.tls_keys
                ));
            }
            Some(RDKafkaErrorCode::Fatal) => {
                self.fail(format!("Kafka client fatal error: {reason}"));
            }
            _ => tracing::warn!(target: "librdkafka", %error, "{reason}"),
        }
    }
}

impl ConsumerContext for WatchedContext {}

/// A Kafka error explained by the client failure behind it, when there is one
/// (a metadata timeout caused by a refused password, say).
pub fn explain(error: Error, failures: &ClientFailures) -> Error {
    match (&error, failures.borrow().as_ref()) {
        (Error::Kafka(_), Some(failure)) => Error::Config(failure.clone()),
        _ => error,
    }
}

/// Waits until a client failure is published; never returns otherwise.
pub async fn failed(failures: &mut ClientFailures) -> Error {
    loop {
        if let Some(message) = failures.borrow_and_update().clone() {
            return Error::Config(message);
        }
        if failures.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> ClientSettings {
        let mut settings = ClientSettings::default();
        for (key, value) in pairs {
            settings.put(key, value, &format!("producer.override.{key}"));
        }
        settings
    }

    fn translated(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let translated = settings(pairs).to_rdkafka().unwrap();
        let config = &translated.config;
        config
            .config_map()
            .keys()
            .filter_map(|k| Some(((*k).to_owned(), config.get(k)?.to_owned())))
            .collect()
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        settings(pairs).to_rdkafka().err().unwrap().to_string()
    }

    #[test]
    fn librdkafka_is_built_with_tls_sasl_and_every_codec() {
        let native = rdkafka::ClientConfig::new().create_native_config().unwrap();
        let features = native.get("builtin.features").unwrap();
        for feature in [
            "gzip",
            "snappy",
            "ssl",
            "sasl",
            "lz4",
            "zstd",
            "sasl_gssapi",
            "sasl_plain",
            "sasl_scram",
            "sasl_oauthbearer",
            "oidc",
        ] {
            assert!(
                features.split(',').any(|f| f == feature),
                "librdkafka lacks {feature}: {features}"
            );
        }
    }

    #[test]
    fn plain_and_scram_jaas_become_username_and_password() {
        let config = translated(&[
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="p=w \"x\"";"#,
            ),
        ]);
        assert_eq!(config["security.protocol"], "sasl_ssl");
        assert_eq!(config["sasl.mechanisms"], "SCRAM-SHA-512");
        assert_eq!(config["sasl.username"], "alice");
        assert_eq!(config["sasl.password"], r#"p=w "x""#);
        let plain = translated(&[(
            "sasl.jaas.config",
            "org.apache.kafka.common.security.plain.PlainLoginModule required\n username = bob password=secret ;",
        )]);
        assert_eq!(plain["sasl.username"], "bob");
        assert_eq!(plain["sasl.password"], "secret");
    }

    #[test]
    fn bad_values_name_the_property_and_hide_secrets() {
        let message = error(&[("security.protocol", "BOGUS")]);
        assert!(
            message.contains("producer.override.security.protocol"),
            "{message}"
        );
        let message = error(&[(
            "sasl.jaas.config",
            r#"com.example.Custom required password="topsecret";"#,
        )]);
        assert!(
            message.contains("producer.override.sasl.jaas.config"),
            "{message}"
        );
        assert!(!message.contains("topsecret"), "{message}");
        let message = error(&[("key.serializer", "x")]);
        assert!(message.contains("Java client setting"), "{message}");
        let message = error(&[("ssl.truststore.location", "/nonexistent/ca.pem")]);
        assert!(
            message.contains("producer.override.ssl.truststore.location"),
            "{message}"
        );
    }

    #[test]
    fn jks_stores_are_refused_with_a_conversion_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trust.jks");
        std::fs::write(&path, [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2]).unwrap();
        let message = error(&[("ssl.truststore.location", path.to_str().unwrap())]);
        assert!(message.contains("keytool -importkeystore"), "{message}");
        assert!(message.contains("JKS"), "{message}");
    }

    #[test]
    fn pem_stores_and_renames_translate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let config = translated(&[
            ("ssl.truststore.location", path.to_str().unwrap()),
            ("ssl.truststore.type", "PEM"),
            ("ssl.endpoint.identification.algorithm", ""),
            ("max.request.size", "2000000"),
            ("compression.type", "zstd"),
        ]);
        assert_eq!(config["ssl.ca.location"], path.to_str().unwrap());
        assert_eq!(config["ssl.endpoint.identification.algorithm"], "none");
        assert_eq!(config["message.max.bytes"], "2000000");
        assert_eq!(config["compression.type"], "zstd");
    }

    #[test]
    fn unknown_properties_fail_at_creation_naming_the_property() {
        let (created, _) = match settings(&[("no.such.thing", "1")])
            .create::<rdkafka::producer::FutureProducer<WatchedContext>>()
        {
            Ok(_) => panic!("an unknown property was accepted"),
            Err(error) => (error.to_string(), ()),
        };
        assert!(
            created.contains("producer.override.no.such.thing"),
            "{created}"
        );
    }

    #[test]
    fn layering_follows_kafka_connect_prefixes_and_policy() {
        let worker: ConfigMap = [
            ("producer.linger.ms", "7"),
            ("security.protocol", "SSL"),
            ("consumer.fetch.min.bytes", "9"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let connector: ConfigMap = [("producer.override.linger.ms", "8")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let producer = ClientSettings::layered(
            "b:1",
            &worker,
            &connector,
            ClientRole::Producer,
            OverridePolicy::All,
        )
        .unwrap();
        assert_eq!(producer.get("linger.ms"), Some("8"));
        assert_eq!(producer.get("security.protocol"), None);
        let own = ClientSettings::layered(
            "b:1",
            &worker,
            &connector,
            ClientRole::Worker,
            OverridePolicy::All,
        )
        .unwrap();
        assert_eq!(own.get("security.protocol"), Some("SSL"));
        assert_eq!(own.get("linger.ms"), None);
        let refused = ClientSettings::layered(
            "b:1",
            &worker,
            &connector,
            ClientRole::Producer,
            OverridePolicy::None,
        );
        assert!(refused.is_err());
    }
}
