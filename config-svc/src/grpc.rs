//! The gRPC face of config-svc, and the hub that tells watchers about new
//! versions.
//!
//! A publish through this process wakes its watchers at once; a publish by
//! another config-svc process on the same PostgreSQL database is seen by the
//! poller within [`POLL`]. Each watch stream compares the versions it has
//! sent with the current ones, so a watcher that falls behind (or a client
//! that reconnects) gets the newest version of each document, never a
//! backlog.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use futures_util::Stream;
use tokio::sync::{Semaphore, watch};
use tonic::{Request, Response, Status};
use tracing::warn;
use warren_proto::config::{
    AuditReply, AuditRequest, Document, GetRequest, GetSchemaRequest, ListReply, ListRequest,
    PublishRequest, RollbackRequest, SchemaReply, SetSchemaRequest, VersionsReply, VersionsRequest,
    WatchRequest, config_server::Config,
};

use crate::{ConfigError, Store, schema};

/// How often the versions are read from the database, for publishes made by
/// other config-svc processes.
pub(crate) const POLL: Duration = Duration::from_millis(500);

/// Watch streams open at once; more are refused with RESOURCE_EXHAUSTED.
pub(crate) const MAX_WATCHERS: usize = 4096;

/// The current version of every document, for watchers.
#[derive(Clone, Debug)]
pub struct Hub {
    versions: watch::Sender<BTreeMap<String, i64>>,
    /// Set when the server shuts down: every watch stream ends, so the
    /// server's graceful shutdown does not wait on streams that never would.
    closing: watch::Sender<bool>,
}

impl Hub {
    pub async fn new(store: &Store) -> Result<Hub, ConfigError> {
        let (versions, _) = watch::channel(store.latest_versions().await?);
        let (closing, _) = watch::channel(false);
        Ok(Hub { versions, closing })
    }

    /// Ends every watch stream (at shutdown).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Records a version published here.
    pub fn published(&self, name: &str, version: i64) {
        self.versions.send_if_modified(|m| {
            let v = m.entry(name.to_owned()).or_default();
            if *v < version {
                *v = version;
                true
            } else {
                false
            }
        });
    }

    /// Reads the versions from the database every `POLL` (500 ms), forever.
    pub async fn poll(self, store: Store) {
        let mut failing = false;
        loop {
            tokio::time::sleep(POLL).await;
            match store.latest_versions().await {
                Ok(now) => {
                    failing = false;
                    self.versions.send_if_modified(|m| {
                        let changed = now.iter().any(|(k, v)| m.get(k) < Some(v));
                        for (k, v) in now {
                            let e = m.entry(k).or_default();
                            *e = (*e).max(v);
                        }
                        changed
                    });
                }
                Err(e) if !failing => {
                    failing = true;
                    warn!(error = %e, "config-svc cannot read the versions; watchers wait");
                }
                Err(_) => {}
            }
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<BTreeMap<String, i64>> {
        self.versions.subscribe()
    }
}

#[derive(Clone, Debug)]
pub struct ConfigService {
    store: Store,
    hub: Hub,
    admin_token: Arc<str>,
    watchers: Arc<Semaphore>,
}

impl ConfigService {
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn new(store: Store, hub: Hub, admin_token: &str) -> Self {
        ConfigService {
            store,
            hub,
            admin_token: admin_token.into(),
            watchers: Arc::new(Semaphore::new(MAX_WATCHERS)),
        }
    }

    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if warren_proto::http::bearer_matches(header, &self.admin_token) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "changing configuration needs the admin token (authorization: Bearer <token>)",
            ))
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<Document, Status>> + Send + 'static>>;

struct Watching {
    store: Store,
    rx: watch::Receiver<BTreeMap<String, i64>>,
    closing: watch::Receiver<bool>,
    names: Option<BTreeSet<String>>,
    sent: BTreeMap<String, i64>,
    pending: VecDeque<Document>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    done: bool,
}

impl Watching {
    /// The next document to send: one newer than what this watcher has.
    async fn next(&mut self) -> Option<Result<Document, Status>> {
        if self.done {
            return None;
        }
        loop {
            if let Some(d) = self.pending.pop_front() {
                return Some(Ok(d));
            }
            let current = self.rx.borrow_and_update().clone();
            for (name, version) in current {
                if self.names.as_ref().is_some_and(|n| !n.contains(&name)) {
                    continue;
                }
                if self.sent.get(&name).is_some_and(|&s| s >= version) {
                    continue;
                }
                match self.store.get(&name, None).await {
                    Ok(doc) => {
                        self.sent.insert(name, doc.version);
                        self.pending.push_back(doc);
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e.into()));
                    }
                }
            }
            if self.pending.is_empty() {
                tokio::select! {
                    changed = self.rx.changed() => if changed.is_err() { return None },
                    _ = self.closing.wait_for(|c| *c) => return None,
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Config for ConfigService {
    async fn get(&self, req: Request<GetRequest>) -> Result<Response<Document>, Status> {
        let r = req.into_inner();
        if r.version < 0 {
            return Err(Status::invalid_argument(
                "versions start at 1 (0: the latest)",
            ));
        }
        let version = (r.version > 0).then_some(r.version);
        Ok(Response::new(self.store.get(&r.name, version).await?))
    }

    async fn list(&self, _: Request<ListRequest>) -> Result<Response<ListReply>, Status> {
        Ok(Response::new(ListReply {
            documents: self.store.list().await?,
        }))
    }

    async fn versions(
        &self,
        req: Request<VersionsRequest>,
    ) -> Result<Response<VersionsReply>, Status> {
        Ok(Response::new(VersionsReply {
            versions: self.store.versions(&req.into_inner().name).await?,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let names = req.into_inner().names;
        for n in &names {
            schema::check_name(n)?;
        }
        let permit = self.watchers.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!("at most {MAX_WATCHERS} watch streams at once"))
        })?;
        let mut rx = self.hub.subscribe();
        rx.mark_changed();
        let state = Watching {
            store: self.store.clone(),
            rx,
            closing: self.hub.closing.subscribe(),
            names: (!names.is_empty()).then(|| names.into_iter().collect()),
            sent: BTreeMap::new(),
            pending: VecDeque::new(),
            _permit: permit,
            done: false,
        };
        let stream = futures_util::stream::unfold(state, |mut s| async move {
            s.next().await.map(|item| (item, s))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn publish(&self, req: Request<PublishRequest>) -> Result<Response<Document>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        let expected = (r.expected_version > 0).then_some(r.expected_version);
        let doc = self
            .store
            .publish(&r.name, &r.body, &r.author, &r.comment, expected)
            .await?;
        self.hub.published(&doc.name, doc.version);
        Ok(Response::new(doc))
    }

    async fn rollback(&self, req: Request<RollbackRequest>) -> Result<Response<Document>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        let doc = self
            .store
            .rollback(&r.name, r.to_version, &r.author)
            .await?;
        self.hub.published(&doc.name, doc.version);
        Ok(Response::new(doc))
    }

    async fn set_schema(
        &self,
        req: Request<SetSchemaRequest>,
    ) -> Result<Response<SchemaReply>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        let schema = (!r.schema.trim().is_empty()).then_some(r.schema.as_str());
        self.store.set_schema(&r.name, schema, &r.author).await?;
        let schema = self.store.schema(&r.name).await?.unwrap_or_default();
        Ok(Response::new(SchemaReply {
            name: r.name,
            schema,
        }))
    }

    async fn get_schema(
        &self,
        req: Request<GetSchemaRequest>,
    ) -> Result<Response<SchemaReply>, Status> {
        let name = req.into_inner().name;
        let schema = self.store.schema(&name).await?.unwrap_or_default();
        Ok(Response::new(SchemaReply { name, schema }))
    }

    async fn audit(&self, req: Request<AuditRequest>) -> Result<Response<AuditReply>, Status> {
        let r = req.into_inner();
        let name = (!r.name.is_empty()).then_some(r.name.as_str());
        let limit = if r.limit == 0 { 100 } else { r.limit };
        Ok(Response::new(AuditReply {
            entries: self.store.audit(name, limit).await?,
        }))
    }
}
