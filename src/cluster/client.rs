//! The connection to a cluster: a kube client from kubeconfig, discovery of
//! the kinds ztp writes, and the few requests plan and apply make, each
//! retried by ztp itself.
//!
//! kube's own retry layer is switched off and reads time out, so one
//! request never hangs or retries for minutes behind ztp's back: reads and
//! server-side applies are retried here on 429, 5xx, timeouts and dropped
//! connections with bounded exponential backoff; a retried DELETE that
//! finds the object gone counts as done. Objects travel as JSON values.

use super::meta_str;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Objects per page of a LIST: kubectl's default `--chunk-size`.
pub const LIST_PAGE: u32 = 500;

/// The field manager of everything ztp writes.
pub const FIELD_MANAGER: &str = "ztp";

/// How to reach the cluster.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig` (else `KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// `--context` (else the kubeconfig's current context).
    pub context: Option<String>,
    /// How long one request may take.
    pub timeout: Duration,
    /// Attempts per request (1 = no retries).
    pub attempts: u32,
    /// The first backoff; it doubles per attempt, up to 8 s.
    pub backoff: Duration,
}

impl ConnectOptions {
    pub fn new(kubeconfig: Option<PathBuf>, context: Option<String>) -> ConnectOptions {
        ConnectOptions {
            kubeconfig,
            context,
            timeout: Duration::from_secs(30),
            attempts: 5,
            backoff: Duration::from_millis(200),
        }
    }
}

/// A failed request, as ztp reports it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load kubeconfig: {0}")]
    Config(String),
    #[error("{0}")]
    Api(ApiFailure),
    #[error("cannot reach the API server: {0}")]
    Transport(String),
}

/// An error answer of the API server.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// `(reason, field, message)` of each cause (conflicts name manager and field).
    pub causes: Vec<(String, String, String)>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl Error {
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Api(a) => Some(a.code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// A server-side apply conflict with other field managers.
    pub fn conflicts(&self) -> Option<&[(String, String, String)]> {
        match self {
            Error::Api(a) if a.code == 409 && a.reason == "Conflict" && !a.causes.is_empty() => Some(&a.causes),
            _ => None,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Error::Api(a) => a.code == 429 || a.code >= 500,
            Error::Transport(_) => true,
            Error::Config(_) => false,
        }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Error {
        match e {
            kube::Error::Api(s) => Error::Api(ApiFailure {
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
                causes: s
                    .details
                    .map(|d| d.causes.into_iter().map(|c| (c.reason, c.field, c.message)).collect())
                    .unwrap_or_default(),
            }),
            kube::Error::SerdeError(e) => Error::Transport(format!("unreadable answer: {e}")),
            other => Error::Transport(other.to_string()),
        }
    }
}

/// A kind the cluster serves: its plural and scope.
#[derive(Clone, Debug)]
pub struct Resource {
    pub api: ApiResource,
    pub namespaced: bool,
}

/// What a DELETE achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// Already gone (404).
    Gone,
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    /// The API server's URL, recorded in saved plans.
    pub server: String,
    attempts: u32,
    backoff: Duration,
}

impl Cluster {
    pub async fn connect(o: &ConnectOptions) -> Result<Cluster, Error> {
        let kubeconfig = match &o.kubeconfig {
            Some(p) => Kubeconfig::read_from(p).map_err(|e| Error::Config(format!("{}: {e}", p.display())))?,
            None => Kubeconfig::read().map_err(|e| Error::Config(e.to_string()))?,
        };
        let options = KubeConfigOptions { context: o.context.clone(), ..Default::default() };
        let mut config =
            Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| Error::Config(e.to_string()))?;
        // ztp owns retries; kube's would retry 429/503/504 for minutes.
        config.default_retry = false;
        config.read_timeout = Some(o.timeout);
        config.connect_timeout = Some(o.timeout);
        config.write_timeout = Some(o.timeout);
        let server = config.cluster_url.to_string().trim_end_matches('/').to_string();
        let client = Client::try_from(config).map_err(|e| Error::Config(e.to_string()))?;
        Ok(Cluster { client, server, attempts: o.attempts.max(1), backoff: o.backoff })
    }

    /// Runs `op` until it succeeds, fails for good, or the attempts run out.
    async fn retry<T, F, Fut>(&self, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut delay = self.backoff;
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if e.retryable() && attempt < self.attempts => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(8));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Discovery: the served kind of each `(apiVersion, kind)`, or the
    /// ones the cluster does not serve.
    pub async fn discover(
        &self,
        kinds: &[(String, String)],
    ) -> Result<Result<BTreeMap<(String, String), Resource>, Vec<(String, String)>>, Error> {
        let mut by_version: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (v, k) in kinds {
            by_version.entry(v.as_str()).or_default().push(k.as_str());
        }
        let mut found = BTreeMap::new();
        let mut missing = Vec::new();
        for (version, ks) in by_version {
            let list = self
                .retry(|| async {
                    let r = if version.contains('/') {
                        self.client.list_api_group_resources(version).await
                    } else {
                        self.client.list_core_api_resources(version).await
                    };
                    r.map_err(Error::from)
                })
                .await;
            let list = match list {
                Ok(l) => Some(l),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            };
            for k in ks {
                let served =
                    list.as_ref().and_then(|l| l.resources.iter().find(|r| r.kind == k && !r.name.contains('/')));
                match served {
                    Some(r) => {
                        let (group, ver) = version.rsplit_once('/').unwrap_or(("", version));
                        let gvk = GroupVersionKind::gvk(group, ver, k);
                        let api = ApiResource::from_gvk_with_plural(&gvk, &r.name);
                        found.insert((version.to_string(), k.to_string()), Resource { api, namespaced: r.namespaced });
                    }
                    None => missing.push((version.to_string(), k.to_string())),
                }
            }
        }
        Ok(if missing.is_empty() { Ok(found) } else { Err(missing) })
    }

    fn api(&self, r: &Resource, namespace: Option<&str>) -> Api<DynamicObject> {
        match (r.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &r.api),
            _ => Api::all_with(self.client.clone(), &r.api),
        }
    }

    pub async fn get(&self, r: &Resource, namespace: Option<&str>, name: &str) -> Result<Option<Value>, Error> {
        let api = self.api(r, namespace);
        self.retry(|| async {
            match api.get(name).await {
                Ok(o) => Ok(Some(to_value(o))),
                Err(e) => {
                    let e = Error::from(e);
                    if e.is_not_found() { Ok(None) } else { Err(e) }
                }
            }
        })
        .await
    }

    /// One LIST, by label selector (`""`: everything), in one namespace
    /// (or cluster-wide for a cluster-scoped kind), in pages of
    /// [`LIST_PAGE`] objects as kubectl asks for them, so no one answer
    /// holds a whole large kind. Each page is retried on its own.
    ///
    /// A continue token the server no longer honours (410 Gone: the list's
    /// resourceVersion was compacted while paging) restarts the list once
    /// as a single unpaginated request, as client-go's pager does.
    pub async fn list(&self, r: &Resource, namespace: Option<&str>, selector: &str) -> Result<Vec<Value>, Error> {
        self.list_each(r, namespace, selector, |v| v).await
    }

    /// [`Cluster::list`], with `each` applied to every item as its page
    /// arrives, so what the caller does not keep is freed page by page.
    pub async fn list_each<T>(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        selector: &str,
        mut each: impl FnMut(Value) -> T,
    ) -> Result<Vec<T>, Error> {
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next) = match self.list_page(r, namespace, selector, Some(LIST_PAGE), &token).await {
                Err(e) if !token.is_empty() && e.code() == Some(410) => {
                    let (all, _) = self.list_page(r, namespace, selector, None, "").await?;
                    return Ok(all.into_iter().map(each).collect());
                }
                other => other?,
            };
            items.extend(page.into_iter().map(&mut each));
            match next {
                None => return Ok(items),
                Some(t) if t.is_empty() => return Ok(items),
                // A server that hands back the token it was given would
                // page forever.
                Some(t) if t == token => {
                    return Err(Error::Transport(format!(
                        "unreadable answer: the LIST of {} repeats its continue token",
                        r.api.plural
                    )));
                }
                Some(t) => token = t,
            }
        }
    }

    /// One page of a LIST and the token of the next (`None` at the end).
    ///
    /// The answer is read straight into JSON values, without a typed
    /// detour, and each item gets its `apiVersion` and `kind`: an API
    /// server leaves them off the items of a built-in kind's list.
    async fn list_page(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        selector: &str,
        limit: Option<u32>,
        token: &str,
    ) -> Result<(Vec<Value>, Option<String>), Error> {
        let api = self.api(r, namespace);
        let mut params = ListParams::default();
        if !selector.is_empty() {
            params = params.labels(selector);
        }
        if let Some(limit) = limit {
            params = params.limit(limit);
        }
        if !token.is_empty() {
            params = params.continue_token(token);
        }
        let (api_version, kind) = (r.api.api_version.as_str(), r.api.kind.as_str());
        self.retry(|| async {
            let mut request = kube::core::Request::new(api.resource_url())
                .list(&params)
                .map_err(|e| Error::Transport(e.to_string()))?;
            request.extensions_mut().insert("list");
            let mut list: Value = self.client.request(request).await?;
            let next = list.pointer("/metadata/continue").and_then(Value::as_str).map(str::to_string);
            let items = match list.get_mut("items").map(Value::take) {
                Some(Value::Array(items)) => items,
                Some(Value::Null) | None => Vec::new(),
                Some(_) => return Err(Error::Transport("unreadable answer: a list whose items are not a list".into())),
            };
            let items = items
                .into_iter()
                .map(|mut item| {
                    if let Some(o) = item.as_object_mut() {
                        o.entry("apiVersion").or_insert_with(|| Value::from(api_version));
                        o.entry("kind").or_insert_with(|| Value::from(kind));
                    }
                    item
                })
                .collect();
            Ok((items, next))
        })
        .await
    }

    /// Server-side apply as field manager `ztp`.
    pub async fn apply(&self, r: &Resource, obj: &Value, dry_run: bool, force: bool) -> Result<Value, Error> {
        let namespace = meta_str(obj, "namespace");
        let name = meta_str(obj, "name").unwrap_or_default();
        let api = self.api(r, namespace);
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.dry_run = dry_run;
        params.force = force;
        self.retry(|| async { Ok(to_value(api.patch(name, &params, &Patch::Apply(obj)).await?)) }).await
    }

    /// DELETE with preconditions; a 404 (also on a retry) counts as gone.
    pub async fn delete(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        uid: Option<&str>,
        resource_version: Option<&str>,
        dry_run: bool,
    ) -> Result<Deleted, Error> {
        let api = self.api(r, namespace);
        let params = DeleteParams {
            dry_run,
            preconditions: Some(Preconditions {
                uid: uid.map(str::to_string),
                resource_version: resource_version.map(str::to_string),
            }),
            ..Default::default()
        };
        self.retry(|| async {
            match api.delete(name, &params).await {
                Ok(_) => Ok(Deleted::Deleted),
                Err(e) => {
                    let e = Error::from(e);
                    if e.is_not_found() { Ok(Deleted::Gone) } else { Err(e) }
                }
            }
        })
        .await
    }

    /// POST (create); a 409 AlreadyExists is returned, not retried.
    pub async fn create(&self, r: &Resource, obj: &Value) -> Result<Value, Error> {
        let namespace = meta_str(obj, "namespace");
        let api = self.api(r, namespace);
        let o: DynamicObject = serde_json::from_value(obj.clone()).map_err(|e| Error::Transport(e.to_string()))?;
        self.retry(|| async { Ok(to_value(api.create(&PostParams::default(), &o).await?)) }).await
    }

    /// PUT (update) guarded by the object's resourceVersion.
    pub async fn replace(&self, r: &Resource, obj: &Value) -> Result<Value, Error> {
        let namespace = meta_str(obj, "namespace");
        let name = meta_str(obj, "name").unwrap_or_default();
        let api = self.api(r, namespace);
        let o: DynamicObject = serde_json::from_value(obj.clone()).map_err(|e| Error::Transport(e.to_string()))?;
        self.retry(|| async { Ok(to_value(api.replace(name, &PostParams::default(), &o).await?)) }).await
    }
}

fn to_value(o: DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}
