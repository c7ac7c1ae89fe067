//! The client library services use: fetch the documents they need at start,
//! keep watching them, reconnect with back-off, and hand each service a
//! typed value that has already been validated (by config-svc's schema, then
//! by deserializing into the service's own type).
//!
//! Every document received is also saved under the cache directory, so a
//! process that starts while config-svc is down runs on the last known copy
//! (and says so in its log) instead of failing. A document that is neither
//! reachable nor cached uses the service's built-in default, also logged.
//!
//! ```no_run
//! # async fn f() {
//! use serde::Deserialize;
//! #[derive(Debug, Deserialize)]
//! struct Chat { max_message_len: usize }
//! let client = warren_config::ConfigClient::start(warren_config::ClientSettings {
//!     url: "http://127.0.0.1:7003".into(),
//!     cache_dir: Some("warren-data/config-cache".into()),
//!     names: vec!["chat".into()],
//!     tls: Default::default(),
//! });
//! let chat = client.typed("chat", Chat { max_message_len: 1024 });
//! // In a service, on every message: the current value, never blocking.
//! let limit = chat.get().max_message_len;
//! # }
//! ```

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{error, info, warn};
use warren_proto::config::{Document, WatchRequest, config_client::ConfigClient as Grpc};

/// Back-off between reconnection attempts: doubles from the first to the
/// last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));

#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// config-svc's gRPC address, e.g. `http://127.0.0.1:7003`
    /// (`https://` for TLS).
    pub url: String,
    /// Where the last known copies are kept (`<name>.json` each). None: no
    /// local copies.
    pub cache_dir: Option<PathBuf>,
    /// The documents to fetch and watch.
    pub names: Vec<String>,
    /// What an `https://` URL trusts and the certificate it shows
    /// (`tls.ca`, `tls.client_cert`).
    pub tls: warren_kit::tls::TlsSettings,
}

/// A stored copy of a document.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    name: String,
    version: i64,
    body: String,
    author: String,
    published_at_ms: i64,
}

/// The documents of one process, kept current. Cheap to clone.
#[derive(Clone)]
pub struct ConfigClient {
    docs: watch::Receiver<BTreeMap<String, Arc<Document>>>,
}

impl fmt::Debug for ConfigClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let versions: BTreeMap<String, i64> = self
            .docs
            .borrow()
            .iter()
            .map(|(k, d)| (k.clone(), d.version))
            .collect();
        f.debug_struct("ConfigClient")
            .field("versions", &versions)
            .finish()
    }
}

fn cache_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn load_cached(dir: &Path, name: &str) -> Option<Document> {
    let path = cache_path(dir, name);
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str::<Cached>(&text) {
        Ok(c) if c.name == name => Some(Document {
            name: c.name,
            version: c.version,
            body: c.body,
            author: c.author,
            published_at_ms: c.published_at_ms,
            comment: String::new(),
        }),
        _ => {
            warn!(path = %path.display(), "ignoring an unreadable saved config copy");
            None
        }
    }
}

fn save(dir: &Path, doc: &Document) {
    let cached = Cached {
        name: doc.name.clone(),
        version: doc.version,
        body: doc.body.clone(),
        author: doc.author.clone(),
        published_at_ms: doc.published_at_ms,
    };
    let path = cache_path(dir, &doc.name);
    let tmp = path.with_extension("json.tmp");
    let result = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, serde_json::to_vec_pretty(&cached).unwrap_or_default()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = result {
        warn!(path = %path.display(), error = %e, "cannot save the config copy");
    }
}

impl ConfigClient {
    /// Loads the saved copies, then fetches and watches `names` in the
    /// background for as long as the runtime runs. Call inside a tokio
    /// runtime.
    pub fn start(settings: ClientSettings) -> ConfigClient {
        let mut initial = BTreeMap::new();
        if let Some(dir) = &settings.cache_dir {
            for name in &settings.names {
                if let Some(doc) = load_cached(dir, name) {
                    initial.insert(name.clone(), Arc::new(doc));
                }
            }
        }
        let (tx, rx) = watch::channel(initial);
        tokio::spawn(keep_watching(settings, tx));
        ConfigClient { docs: rx }
    }

    /// The current version of a document (None: not known yet).
    pub fn document(&self, name: &str) -> Option<Arc<Document>> {
        self.docs.borrow().get(name).cloned()
    }

    /// A live, typed view of document `name`: `default` until the document
    /// is known. A version that does not deserialize into `T` is logged and
    /// skipped (the previous value stays).
    pub fn typed<T>(&self, name: &str, default: T) -> Live<T>
    where
        T: DeserializeOwned + fmt::Debug + Send + Sync + 'static,
    {
        let mut docs = self.docs.clone();
        let name = name.to_owned();
        let convert = |doc: &Document| -> Option<T> {
            match serde_json::from_str::<T>(&doc.body) {
                Ok(v) => Some(v),
                Err(e) => {
                    error!(
                        name = %doc.name, version = doc.version, error = %e,
                        "config version does not fit this service's type; keeping the previous value"
                    );
                    None
                }
            }
        };
        let first = docs.borrow_and_update().get(&name).cloned();
        let (version, value) = first
            .and_then(|d| Some((d.version, convert(&d)?)))
            .unwrap_or((0, default));
        let (tx, rx) = watch::channel((version, Arc::new(value)));
        tokio::spawn(async move {
            while docs.changed().await.is_ok() {
                let doc = docs.borrow_and_update().get(&name).cloned();
                let Some(doc) = doc else { continue };
                if doc.version == tx.borrow().0 {
                    continue;
                }
                if let Some(v) = convert(&doc) {
                    info!(name = %name, version = doc.version, value = ?v, "config applied");
                    if tx.send((doc.version, Arc::new(v))).is_err() {
                        return;
                    }
                }
            }
        });
        Live { rx }
    }
}

/// A typed configuration value that follows config-svc. Cheap to clone;
/// [`Live::get`] never blocks on the network.
pub struct Live<T> {
    rx: watch::Receiver<(i64, Arc<T>)>,
}

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live {
            rx: self.rx.clone(),
        }
    }
}

impl<T> Live<T> {
    /// A value that never changes (for tests and for running without
    /// config-svc).
    pub fn fixed(value: T) -> Live<T> {
        let (tx, rx) = watch::channel((0, Arc::new(value)));
        drop(tx);
        Live { rx }
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        self.rx.borrow().1.clone()
    }

    /// The version of the current value (0: the built-in default).
    pub fn version(&self) -> i64 {
        self.rx.borrow().0
    }
}

impl<T: fmt::Debug> fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.rx.borrow();
        f.debug_struct("Live")
            .field("version", &v.0)
            .field("value", &v.1)
            .finish()
    }
}

async fn keep_watching(
    settings: ClientSettings,
    tx: watch::Sender<BTreeMap<String, Arc<Document>>>,
) {
    let mut delay = BACKOFF.0;
    let mut announced_fallback = false;
    let mut attempt: u64 = 0;
    loop {
        if tx.is_closed() {
            return;
        }
        attempt += 1;
        match watch_once(&settings, &tx).await {
            Ok(received) => {
                warn!(url = %settings.url, "config-svc closed the watch stream; reconnecting");
                if received {
                    delay = BACKOFF.0;
                }
            }
            Err((e, received)) => {
                if received {
                    delay = BACKOFF.0;
                }
                if !announced_fallback && !received {
                    announced_fallback = true;
                    let docs = tx.borrow();
                    for name in &settings.names {
                        match docs.get(name) {
                            Some(d) => warn!(
                                name = %name, version = d.version, url = %settings.url, error = %e,
                                "config-svc is unreachable: running on the last known copy saved locally"
                            ),
                            None => warn!(
                                name = %name, url = %settings.url, error = %e,
                                "config-svc is unreachable and there is no saved copy: running on the built-in default"
                            ),
                        }
                    }
                } else {
                    warn!(url = %settings.url, attempt, retry_in_ms = delay.as_millis() as u64, error = %e, "config-svc watch failed; retrying");
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(BACKOFF.1);
    }
}

/// One connection: watch until the stream ends. Says whether any document
/// arrived.
async fn watch_once(
    settings: &ClientSettings,
    tx: &watch::Sender<BTreeMap<String, Arc<Document>>>,
) -> Result<bool, (String, bool)> {
    let endpoint = warren_kit::grpc::endpoint(&settings.url)
        .map_err(|e| (format!("config-svc: {e}"), false))?
        .connect_timeout(Duration::from_secs(3))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect_with_connector(warren_kit::grpc::Connector::new(&settings.tls))
        .await
        .map_err(|e| (e.to_string(), false))?;
    let mut grpc = Grpc::new(channel);
    let mut stream = grpc
        .watch(WatchRequest {
            names: settings.names.clone(),
        })
        .await
        .map_err(|s| (s.message().to_owned(), false))?
        .into_inner();
    let mut received = false;
    loop {
        match stream.message().await {
            Ok(Some(doc)) => {
                if !received {
                    info!(url = %settings.url, "watching config-svc");
                }
                received = true;
                let newer = tx
                    .borrow()
                    .get(&doc.name)
                    .is_none_or(|d| d.version != doc.version);
                if newer {
                    if let Some(dir) = &settings.cache_dir {
                        save(dir, &doc);
                    }
                    tx.send_modify(|m| {
                        m.insert(doc.name.clone(), Arc::new(doc));
                    });
                }
            }
            Ok(None) => return Ok(received),
            Err(s) => return Err((s.message().to_owned(), received)),
        }
    }
}
