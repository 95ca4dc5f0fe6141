//! An in-process fake Kubernetes API server for the cluster tests.
//!
//! It speaks the wire protocol the client uses, over real HTTP on
//! 127.0.0.1: discovery (`/api`, `/api/v1`, `/apis`, `/apis/g/v`), CRUD,
//! LIST with label selectors, server-side apply with per-manager field
//! ownership (conflicts as 409 with `FieldManagerConflict` causes, `force`,
//! fields a manager stops applying removed, no-op applies that keep the
//! resourceVersion, `managedFields` rendered), merge patches, dry-run,
//! DELETE with preconditions, resourceVersion and generation, Leases, the
//! CRDs of the kinds ztp writes, and a simulated Gateway controller and
//! istiod (Programmed with observedGeneration after a delay, the waypoint's
//! Deployment Available, the Service's `istio.io/WaypointBound`). Every
//! request is logged; faults (status codes, delays, dropped connections)
//! can be injected on chosen requests. Each test starts its own server,
//! which stops when dropped.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `(apiVersion, kind, plural, namespaced)` of every kind served.
const KINDS: &[(&str, &str, &str, bool)] = &[
    ("v1", "Namespace", "namespaces", false),
    ("v1", "Service", "services", true),
    ("v1", "Secret", "secrets", true),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Pod", "pods", true),
    ("apps/v1", "Deployment", "deployments", true),
    ("apps/v1", "DaemonSet", "daemonsets", true),
    ("coordination.k8s.io/v1", "Lease", "leases", true),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", true),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", false),
    ("cilium.io/v2", "CiliumNetworkPolicy", "ciliumnetworkpolicies", true),
    ("cilium.io/v2", "CiliumClusterwideNetworkPolicy", "ciliumclusterwidenetworkpolicies", false),
    ("security.istio.io/v1", "PeerAuthentication", "peerauthentications", true),
    ("security.istio.io/v1", "AuthorizationPolicy", "authorizationpolicies", true),
    ("gateway.networking.k8s.io/v1", "Gateway", "gateways", true),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes", true),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant", "referencegrants", true),
];

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

fn is_crd_group(group: &str) -> bool {
    matches!(group, "cilium.io" | "security.istio.io" | "gateway.networking.k8s.io")
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    /// The status sent; 0 when the connection was dropped.
    pub status: u16,
    /// The answer's body. For a write, and for a controller's status
    /// update (method `CONTROLLER`), the object as it is now.
    pub response: String,
}

impl Logged {
    pub fn param(&self, k: &str) -> Option<String> {
        self.query.split('&').filter_map(|kv| kv.split_once('=')).find(|(key, _)| *key == k).map(|(_, v)| v.to_string())
    }

    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }

    pub fn is_dry_run(&self) -> bool {
        self.param("dryRun").is_some() || (self.method == "DELETE" && self.body.contains("\"dryRun\""))
    }
}

/// A write that changes the cluster (not a dry-run).
pub fn is_mutating(l: &Logged) -> bool {
    l.is_write() && !l.is_dry_run()
}

/// What a fault does to the request it hits.
#[derive(Clone, Debug)]
pub enum FaultAction {
    Status(u16),
    Delay(Duration),
    Drop,
    /// A 200 with this body, whatever was asked (a misbehaving server).
    Answer(Value),
}

/// A fault on requests whose method is `method` (`*`: any) and whose path
/// contains `path`: the `nth` such request (1-based), or every one (0).
#[derive(Clone, Debug)]
pub struct Fault {
    method: String,
    path: String,
    exact: bool,
    nth: usize,
    action: FaultAction,
    seen: usize,
}

impl Fault {
    pub fn new(method: &str, path_contains: &str, nth: usize, action: FaultAction) -> Fault {
        Fault { method: method.to_string(), path: path_contains.to_string(), exact: false, nth, action, seen: 0 }
    }

    /// A fault on requests to exactly `path`.
    pub fn at(method: &str, path: &str, nth: usize, action: FaultAction) -> Fault {
        Fault { exact: true, ..Fault::new(method, path, nth, action) }
    }
}

/// A manager's claim on an object's fields.
#[derive(Clone, Debug, PartialEq)]
struct Owner {
    operation: &'static str,
    api_version: String,
    fields: BTreeSet<Vec<String>>,
}

#[derive(Clone, Debug)]
struct Stored {
    /// The object without `metadata.managedFields`.
    value: Value,
    owners: BTreeMap<String, Owner>,
}

type Key = (String, String, Option<String>, String);

struct State {
    objects: BTreeMap<Key, Stored>,
    /// Controller writes not yet in the log.
    events: Vec<Logged>,
    rv: u64,
    uids: u64,
    log: Vec<Logged>,
    /// The answer of the request being routed, when it was written
    /// straight to text (LISTs) rather than returned as a value.
    reply_text: Option<String>,
    faults: Vec<Fault>,
    without: BTreeSet<String>,
    delay: Duration,
    never_ready: bool,
}

/// How to start a fake.
pub struct Builder {
    without: BTreeSet<String>,
    delay: Duration,
    never_ready: bool,
}

impl Builder {
    /// That API group is not served.
    pub fn without_group(mut self, group: &str) -> Builder {
        self.without.insert(group.to_string());
        self
    }

    /// How long the Gateway controller takes (default 50 ms).
    pub fn controller_delay(mut self, d: Duration) -> Builder {
        self.delay = d;
        self
    }

    /// Gateways never become Programmed.
    pub fn waypoint_never_ready(mut self) -> Builder {
        self.never_ready = true;
        self
    }

    pub fn start(self) -> FakeKube {
        let state = Arc::new(Mutex::new(State {
            objects: BTreeMap::new(),
            events: Vec::new(),
            rv: 100,
            uids: 0,
            log: Vec::new(),
            reply_text: None,
            faults: Vec::new(),
            without: self.without,
            delay: self.delay,
            never_ready: self.never_ready,
        }));
        {
            let mut s = state.lock().unwrap();
            for ns in ["default", "kube-system", "istio-system"] {
                s.insert_new(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}), "test-setup");
            }
            for (v, k, plural, namespaced) in KINDS {
                let group = group_of(v);
                if !is_crd_group(group) || s.without.contains(group) {
                    continue;
                }
                let version = v.rsplit_once('/').map_or(*v, |(_, ver)| ver);
                s.insert_new(
                    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                        "metadata": {"name": format!("{plural}.{group}")},
                        "spec": {"group": group, "names": {"kind": k, "plural": plural},
                            "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                            "versions": [{"name": version, "served": true, "storage": true}]}}),
                    "test-setup",
                );
            }
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || serve(listener, shared, stopped));
        let dir = std::env::temp_dir().join(format!("ztp-fakekube-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\ncurrent-context: fake\nusers:\n- name: tester\n  user:\n    token: fake-token\n"
            ),
        )
        .unwrap();
        FakeKube { state, url, dir, kubeconfig, stop: Some(stop), thread: Some(thread) }
    }
}

/// A running fake API server.
pub struct FakeKube {
    state: Arc<Mutex<State>>,
    url: String,
    dir: PathBuf,
    kubeconfig: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl FakeKube {
    pub fn start() -> FakeKube {
        FakeKube::builder().start()
    }

    pub fn builder() -> Builder {
        Builder { without: BTreeSet::new(), delay: Duration::from_millis(50), never_ready: false }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.kubeconfig.clone()
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    pub fn fault(&self, f: Fault) {
        self.state.lock().unwrap().faults.push(f);
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let s = self.state.lock().unwrap();
        let key = (api_version.to_string(), kind.to_string(), namespace.map(str::to_string), name.to_string());
        s.objects.get(&key).map(render)
    }

    /// Every object, sorted by apiVersion, kind, namespace and name.
    pub fn objects(&self) -> Vec<Value> {
        self.state.lock().unwrap().objects.values().map(render).collect()
    }

    /// Stores each of `objs` as [`FakeKube::put`] does, reconciling once.
    pub fn put_all(&self, objs: Vec<Value>) {
        let mut s = self.state.lock().unwrap();
        for obj in objs {
            let key = key_of(&obj);
            s.objects.remove(&key);
            s.insert_new(obj, "test-setup");
        }
        s.reconcile_bindings();
        s.events.clear();
    }

    /// Stores `obj` as it is (a test's setup), replacing any object of its name.
    pub fn put(&self, obj: Value) {
        let mut s = self.state.lock().unwrap();
        let key = key_of(&obj);
        s.objects.remove(&key);
        s.insert_new(obj, "test-setup");
        s.reconcile_bindings();
        s.events.clear();
    }

    /// A server-side apply by another field manager.
    pub fn apply_as(&self, manager: &str, obj: Value, force: bool) -> Result<Value, Value> {
        let mut s = self.state.lock().unwrap();
        let (code, body) = s.apply(manager, obj, force, false);
        s.events.clear();
        if code == 200 || code == 201 { Ok(body) } else { Err(body) }
    }

    /// An update (not an apply) by another field manager.
    pub fn update_as(&self, manager: &str, obj: Value) {
        let mut s = self.state.lock().unwrap();
        let key = key_of(&obj);
        if let Some(old) = s.objects.get(&key).cloned() {
            s.update(key, old, strip_meta(obj), manager);
        }
        s.events.clear();
    }

    /// A controller's status write: a new resourceVersion, the same content.
    pub fn set_status(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str, status: Value) {
        let mut s = self.state.lock().unwrap();
        let key = (api_version.to_string(), kind.to_string(), namespace.map(str::to_string), name.to_string());
        let rv = s.next_rv();
        if let Some(o) = s.objects.get_mut(&key) {
            o.value["status"] = status;
            o.value["metadata"]["resourceVersion"] = json!(rv);
        }
    }

    pub fn delete(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        let mut s = self.state.lock().unwrap();
        let key = (api_version.to_string(), kind.to_string(), namespace.map(str::to_string), name.to_string());
        s.objects.remove(&key).is_some()
    }
}

fn key_of(obj: &Value) -> Key {
    (
        obj["apiVersion"].as_str().unwrap_or("").to_string(),
        obj["kind"].as_str().unwrap_or("").to_string(),
        obj["metadata"]["namespace"].as_str().map(str::to_string),
        obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

fn now() -> &'static str {
    "2026-12-06T12:00:00Z"
}

/// The object with its managedFields, as the server returns it.
fn render(s: &Stored) -> Value {
    let mut v = s.value.clone();
    let managed: Vec<Value> = s
        .owners
        .iter()
        .map(|(m, o)| {
            json!({"manager": m, "operation": o.operation, "apiVersion": o.api_version, "time": now(),
                "fieldsType": "FieldsV1", "fieldsV1": fields_v1(&o.fields)})
        })
        .collect();
    if !managed.is_empty() {
        v["metadata"]["managedFields"] = Value::Array(managed);
    }
    v
}

fn fields_v1(fields: &BTreeSet<Vec<String>>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut at = &mut root;
        for seg in path {
            let entry = at.entry(format!("f:{seg}")).or_insert_with(|| json!({}));
            at = entry.as_object_mut().unwrap();
        }
    }
    Value::Object(root)
}

/// [`render`] written straight from the store, as a LIST answer needs it
/// for thousands of objects: the same text as `render(s).to_string()`,
/// without copying the object into a new value first. Maps are written in
/// key order, as `serde_json` writes them, so `managedFields` takes its
/// place among the metadata keys.
struct Served<'a>(&'a Stored);

impl serde::Serialize for Served<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (Some(object), false) = (self.0.value.as_object(), self.0.owners.is_empty()) else {
            return self.0.value.serialize(ser);
        };
        let mut map = ser.serialize_map(Some(object.len()))?;
        for (k, v) in object {
            match v.as_object() {
                Some(meta) if k == "metadata" => map.serialize_entry(k, &ServedMeta(meta, &self.0.owners))?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

struct ServedMeta<'a>(&'a Map<String, Value>, &'a BTreeMap<String, Owner>);

impl serde::Serialize for ServedMeta<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        const KEY: &str = "managedFields";
        let mut map = ser.serialize_map(None)?;
        let mut written = false;
        for (k, v) in self.0 {
            if !written && k.as_str() >= KEY {
                map.serialize_entry(KEY, &ServedOwners(self.1))?;
                written = true;
            }
            if k != KEY {
                map.serialize_entry(k, v)?;
            }
        }
        if !written {
            map.serialize_entry(KEY, &ServedOwners(self.1))?;
        }
        map.end()
    }
}

struct ServedOwners<'a>(&'a BTreeMap<String, Owner>);

impl serde::Serialize for ServedOwners<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        let mut seq = ser.serialize_seq(Some(self.0.len()))?;
        for (manager, o) in self.0 {
            struct Entry<'a>(&'a str, &'a Owner);
            impl serde::Serialize for Entry<'_> {
                fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                    // The keys of `render`'s `json!`, in their sorted order.
                    let mut map = ser.serialize_map(Some(6))?;
                    map.serialize_entry("apiVersion", &self.1.api_version)?;
                    map.serialize_entry("fieldsType", "FieldsV1")?;
                    let paths: Vec<&[String]> = self.1.fields.iter().map(Vec::as_slice).collect();
                    map.serialize_entry("fieldsV1", &ServedFields(&paths, 0))?;
                    map.serialize_entry("manager", self.0)?;
                    map.serialize_entry("operation", self.1.operation)?;
                    map.serialize_entry("time", now())?;
                    map.end()
                }
            }
            seq.serialize_element(&Entry(manager, o))?;
        }
        seq.end()
    }
}

/// [`fields_v1`] of sorted paths that share their first `depth` segments:
/// one `f:` key per next segment, in order.
struct ServedFields<'a>(&'a [&'a [String]], usize);

impl serde::Serialize for ServedFields<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let ServedFields(paths, depth) = *self;
        let mut map = ser.serialize_map(None)?;
        // The path that ends here sorts first; the rest go by their next segment.
        let mut rest = &paths[paths.iter().take_while(|p| p.len() <= depth).count()..];
        while let Some(seg) = rest.first().map(|p| &p[depth]) {
            let n = rest.iter().take_while(|p| p.get(depth) == Some(seg)).count();
            let (group, after) = rest.split_at(n);
            map.serialize_entry(&format!("f:{seg}"), &ServedFields(group, depth + 1))?;
            rest = after;
        }
        map.end()
    }
}

/// Server-maintained metadata, which no manager owns.
const SERVER_META: &[&str] =
    &["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"];

fn strip_meta(mut v: Value) -> Value {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

/// The leaf paths of an applied object (maps recurse; lists and scalars,
/// and empty maps, are leaves).
fn leaves(v: &Value) -> BTreeSet<Vec<String>> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    path.push(k.clone());
                    walk(x, path, out);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    if let Value::Object(m) = v {
        for (k, x) in m {
            match k.as_str() {
                "apiVersion" | "kind" | "status" => {}
                "metadata" => {
                    if let Value::Object(meta) = x {
                        for (mk, mx) in meta {
                            if !SERVER_META.contains(&mk.as_str()) {
                                walk(mx, &mut vec!["metadata".into(), mk.clone()], &mut out);
                            }
                        }
                    }
                }
                _ => walk(x, &mut vec![k.clone()], &mut out),
            }
        }
    }
    out
}

fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.as_object()?.get(k))
}

fn set_path(v: &mut Value, path: &[String], x: Value) {
    let Some((last, init)) = path.split_last() else { return };
    let mut at = v;
    for k in init {
        if !at.get(k).is_some_and(Value::is_object) {
            at[k.as_str()] = json!({});
        }
        at = &mut at[k.as_str()];
    }
    at[last.as_str()] = x;
}

/// Removes a path and the maps it leaves empty.
fn remove_path(v: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else { return };
    let Some(m) = v.as_object_mut() else { return };
    if rest.is_empty() {
        m.remove(first);
        return;
    }
    if let Some(child) = m.get_mut(first) {
        remove_path(child, rest);
        if child.as_object().is_some_and(Map::is_empty) {
            m.remove(first);
        }
    }
}

fn status(code: u16, reason: &str, message: &str, details: Value) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details, "code": code}),
    )
}

impl State {
    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn new_uid(&mut self) -> String {
        self.uids += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uids)
    }

    /// Stores a new object owned wholly by `manager` (an Update).
    fn insert_new(&mut self, obj: Value, manager: &str) -> Value {
        let mut obj = strip_meta(obj);
        let key = key_of(&obj);
        let rv = self.next_rv();
        let uid = self.new_uid();
        let meta = obj["metadata"].as_object_mut().unwrap();
        meta.entry("uid").or_insert(json!(uid));
        meta.insert("resourceVersion".into(), json!(rv));
        meta.entry("creationTimestamp").or_insert(json!(now()));
        if !matches!(key.1.as_str(), "Namespace" | "Secret" | "ConfigMap" | "Service" | "Lease" | "Pod") {
            meta.entry("generation").or_insert(json!(1));
        }
        let mut owners = BTreeMap::new();
        owners.insert(
            manager.to_string(),
            Owner { operation: "Update", api_version: key.0.clone(), fields: leaves(&obj) },
        );
        self.objects.insert(key.clone(), Stored { value: obj.clone(), owners });
        obj
    }

    fn namespace_missing(&self, ns: Option<&str>) -> Option<(u16, Value)> {
        let ns = ns?;
        let key = ("v1".to_string(), "Namespace".to_string(), None, ns.to_string());
        if self.objects.contains_key(&key) {
            None
        } else {
            Some(status(
                404,
                "NotFound",
                &format!("namespaces \"{ns}\" not found"),
                json!({"name": ns, "kind": "namespaces"}),
            ))
        }
    }

    /// Server-side apply of `obj` by `manager`.
    fn apply(&mut self, manager: &str, obj: Value, force: bool, dry_run: bool) -> (u16, Value) {
        let obj = strip_meta(obj);
        let key = key_of(&obj);
        if let Some(e) = self.namespace_missing(key.2.as_deref()) {
            return e;
        }
        let applied = leaves(&obj);
        let old = self.objects.get(&key).cloned();
        let Some(old) = old else {
            let mut created = obj.clone();
            if let Some(m) = created.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            if let Some(c) = created.as_object_mut() {
                c.remove("status");
            }
            if dry_run {
                let mut v = created;
                v["metadata"]["uid"] = json!("dry-run");
                return (201, v);
            }
            self.insert_new(created, manager);
            let stored = self.objects.get_mut(&key).unwrap();
            stored.owners = BTreeMap::from([(
                manager.to_string(),
                Owner { operation: "Apply", api_version: key.0.clone(), fields: applied },
            )]);
            self.after_write(&key, None);
            return (201, render(&self.objects[&key]));
        };

        // Conflicts: a field another manager owns, set to a different value.
        let mut conflicts = Vec::new();
        for path in &applied {
            let live = get_path(&old.value, path);
            if live.is_none() || live == get_path(&obj, path) {
                continue;
            }
            for (m, o) in &old.owners {
                if m != manager && o.fields.contains(path) {
                    conflicts.push((m.clone(), o.api_version.clone(), path.clone()));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|(m, v, p)| {
                    json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {v}"),
                        "field": format!(".{}", p.join("."))})
                })
                .collect();
            let list: Vec<String> = conflicts
                .iter()
                .map(|(m, v, p)| format!("conflict with \"{m}\" using {v}: .{}", p.join(".")))
                .collect();
            let n = conflicts.len();
            return status(
                409,
                "Conflict",
                &format!("Apply failed with {n} conflict{}: {}", if n == 1 { "" } else { "s" }, list.join("\n")),
                json!({"name": key.3, "kind": key.1.to_lowercase(), "causes": causes}),
            );
        }
        let mut owners = old.owners.clone();
        if force {
            for (_, _, p) in &conflicts {
                for (m, o) in owners.iter_mut() {
                    if m != manager {
                        o.fields.remove(p);
                    }
                }
            }
        }
        let mut value = old.value.clone();
        let before = owners.get(manager).map(|o| o.fields.clone()).unwrap_or_default();
        for dropped in before.difference(&applied) {
            let others = owners.iter().any(|(m, o)| m != manager && o.fields.contains(dropped));
            if !others {
                remove_path(&mut value, dropped);
            }
        }
        for path in &applied {
            if let Some(x) = get_path(&obj, path) {
                set_path(&mut value, path, x.clone());
            }
        }
        owners.insert(manager.to_string(), Owner { operation: "Apply", api_version: key.0.clone(), fields: applied });
        owners.retain(|_, o| !o.fields.is_empty());
        self.commit(key, old, value, owners, dry_run)
    }

    /// Stores a changed object: no-ops keep the resourceVersion; a spec
    /// change bumps the generation.
    fn commit(
        &mut self,
        key: Key,
        old: Stored,
        mut value: Value,
        owners: BTreeMap<String, Owner>,
        dry_run: bool,
    ) -> (u16, Value) {
        if value == old.value && owners == old.owners {
            return (200, render(&old));
        }
        let stored = if dry_run {
            Stored { value, owners }
        } else {
            value["metadata"]["resourceVersion"] = json!(self.next_rv());
            if value["spec"] != old.value["spec"]
                && let Some(g) = old.value["metadata"]["generation"].as_i64()
            {
                value["metadata"]["generation"] = json!(g + 1);
            }
            let stored = Stored { value, owners };
            self.objects.insert(key.clone(), stored.clone());
            self.after_write(&key, Some(&old));
            self.objects.get(&key).cloned().unwrap_or(stored)
        };
        (200, render(&stored))
    }

    /// A non-apply write (PUT or merge patch) by `manager`: it takes the
    /// fields whose values it changed.
    fn update(&mut self, key: Key, old: Stored, new: Value, manager: &str) -> (u16, Value) {
        let mut value = new;
        // Server-maintained metadata is the server's.
        for f in ["uid", "creationTimestamp", "generation"] {
            match old.value["metadata"].get(f) {
                Some(x) => value["metadata"][f] = x.clone(),
                None => {
                    if let Some(m) = value["metadata"].as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        value["metadata"]["resourceVersion"] = old.value["metadata"]["resourceVersion"].clone();
        if key.1 != "Deployment" && value.get("status").is_none() && old.value.get("status").is_some() {
            value["status"] = old.value["status"].clone();
        }
        let new_leaves = leaves(&value);
        let changed: BTreeSet<Vec<String>> =
            new_leaves.iter().filter(|p| get_path(&value, p) != get_path(&old.value, p)).cloned().collect();
        let mut owners = old.owners.clone();
        for o in owners.values_mut() {
            o.fields.retain(|p| !changed.contains(p) && new_leaves.contains(p));
        }
        let mine = owners.entry(manager.to_string()).or_insert(Owner {
            operation: "Update",
            api_version: key.0.clone(),
            fields: BTreeSet::new(),
        });
        mine.fields.extend(changed);
        owners.retain(|_, o| !o.fields.is_empty());
        self.commit(key, old, value, owners, false)
    }

    /// The controllers' reactions to a write.
    fn after_write(&mut self, key: &Key, old: Option<&Stored>) {
        if key.1 == "Gateway" {
            let generation = self.objects.get(key).and_then(|s| s.value["metadata"]["generation"].as_i64());
            let before = old.and_then(|o| o.value["metadata"]["generation"].as_i64());
            if generation != before {
                // Until the controller catches up, Programmed is for the old generation.
                if let Some(s) = self.objects.get_mut(key) {
                    let observed = before.unwrap_or(0);
                    s.value["status"] = json!({"conditions": [
                        {"type": "Accepted", "status": "Unknown", "reason": "Pending", "observedGeneration": observed},
                        {"type": "Programmed", "status": if before.is_some() { "True" } else { "Unknown" }, "reason": "Pending", "observedGeneration": observed}]});
                }
                self.schedule_gateway(key.clone());
            }
        }
        if key.1 == "Service" || key.1 == "Gateway" {
            self.reconcile_bindings_in(key.2.clone().as_deref());
        }
    }

    fn schedule_gateway(&self, key: Key) {
        if self.never_ready {
            return;
        }
        let delay = self.delay;
        let Some(me) = SELF.with(|s| s.borrow().clone()) else { return };
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut s = me.lock().unwrap();
            s.program_gateway(&key);
        });
    }

    /// Records a controller's write of `key` for the log.
    fn event(&mut self, key: &Key) {
        if let Some(s) = self.objects.get(key) {
            let path = format!("{} {}/{}", key.1, key.2.clone().unwrap_or_default(), key.3);
            self.events.push(Logged {
                method: "CONTROLLER".into(),
                path,
                query: String::new(),
                body: String::new(),
                status: 200,
                response: render(s).to_string(),
            });
        }
    }

    /// Moves controller events into the log.
    fn flush_events(&mut self) {
        let events = std::mem::take(&mut self.events);
        self.log.extend(events);
    }

    fn program_gateway(&mut self, key: &Key) {
        let rv = self.next_rv();
        let Some(gw) = self.objects.get_mut(key) else { return };
        let generation = gw.value["metadata"]["generation"].as_i64().unwrap_or(1);
        gw.value["status"] = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": generation, "lastTransitionTime": now(), "message": ""},
            {"type": "Programmed", "status": "True", "reason": "Programmed", "observedGeneration": generation, "lastTransitionTime": now(), "message": ""}]});
        gw.value["metadata"]["resourceVersion"] = json!(rv);
        let dep_key = ("apps/v1".to_string(), "Deployment".to_string(), key.2.clone(), key.3.clone());
        if !self.objects.contains_key(&dep_key) {
            self.insert_new(
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": key.3, "namespace": key.2, "labels": {"gateway.networking.k8s.io/gateway-name": key.3}},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": key.3}}}}),
                "istio-gateway-controller",
            );
        }
        if let Some(dep) = self.objects.get_mut(&dep_key) {
            let g = dep.value["metadata"]["generation"].as_i64().unwrap_or(1);
            dep.value["status"] = json!({"observedGeneration": g, "replicas": 1, "availableReplicas": 1,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]});
        }
        self.event(key);
        self.event(&dep_key);
        self.reconcile_bindings_in(key.2.clone().as_deref());
        self.flush_events();
    }

    /// istiod: a Service labelled `istio.io/use-waypoint: W` is bound once
    /// waypoint W is Programmed.
    fn reconcile_bindings(&mut self) {
        self.reconcile_bindings_in(None);
    }

    /// [`State::reconcile_bindings`] for the Services of one namespace
    /// (`None`: all), reading only that namespace's Gateways.
    fn reconcile_bindings_in(&mut self, namespace: Option<&str>) {
        let gateway_kinds = KINDS.iter().filter(|k| k.1 == "Gateway").map(|k| k.0);
        let programmed: BTreeSet<(Option<String>, String)> = gateway_kinds
            .flat_map(|v| of_kind(&self.objects, v, "Gateway", namespace))
            .filter(|(_, s)| {
                s.value["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["type"] == "Programmed"
                            && c["status"] == "True"
                            && c["observedGeneration"] == s.value["metadata"]["generation"]
                    })
                })
            })
            .map(|(k, _)| (k.2.clone(), k.3.clone()))
            .collect();
        let mut bumps = Vec::new();
        let start = ("v1".to_string(), "Service".to_string(), namespace.map(str::to_string), String::new());
        let services = self.objects.range_mut(start..).take_while(|(k, _)| {
            k.0 == "v1" && k.1 == "Service" && (namespace.is_none() || k.2.as_deref() == namespace)
        });
        for (k, s) in services {
            let wp = s.value["metadata"]["labels"]["istio.io/use-waypoint"].as_str().map(str::to_string);
            let bound = wp.as_ref().is_some_and(|w| programmed.contains(&(k.2.clone(), w.clone())));
            let mut conditions: Vec<Value> = s.value["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c["type"] != "istio.io/WaypointBound")
                .collect();
            if bound {
                conditions.push(json!({"type": "istio.io/WaypointBound", "status": "True", "reason": "Accepted",
                    "message": format!("bound to {}/{}", k.2.clone().unwrap_or_default(), wp.clone().unwrap_or_default())}));
            }
            let new = if conditions.is_empty() { Value::Null } else { json!({"conditions": conditions}) };
            let old = s.value.get("status").cloned().unwrap_or(Value::Null);
            if new != old {
                match new {
                    Value::Null => {
                        s.value.as_object_mut().unwrap().remove("status");
                    }
                    v => s.value["status"] = v,
                }
                bumps.push(k.clone());
            }
        }
        for k in bumps {
            let rv = self.next_rv();
            if let Some(s) = self.objects.get_mut(&k) {
                s.value["metadata"]["resourceVersion"] = json!(rv);
            }
            self.event(&k);
        }
    }

    fn served(&self, api_version: &str) -> bool {
        !self.without.contains(group_of(api_version))
    }
}

thread_local! {
    /// The state, for controller tasks spawned on the server's thread.
    static SELF: std::cell::RefCell<Option<Arc<Mutex<State>>>> = const { std::cell::RefCell::new(None) };
}

fn serve(listener: std::net::TcpListener, state: Arc<Mutex<State>>, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    SELF.with(|s| *s.borrow_mut() = Some(state.clone()));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let state = state.clone();
                    tokio::task::spawn_local(async move {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                    });
                }
            }
        }
    });
}

/// Why a connection was dropped on purpose.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a fault")
    }
}

impl std::error::Error for Dropped {}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut logged = Logged {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
        status: 0,
        response: String::new(),
    };

    let fault = {
        let mut s = state.lock().unwrap();
        let mut hit = None;
        for f in s.faults.iter_mut() {
            let matches = if f.exact { path == f.path } else { path.contains(&f.path) };
            if (f.method == "*" || f.method == method) && matches {
                f.seen += 1;
                if f.nth == 0 || f.nth == f.seen {
                    hit = Some(f.action.clone());
                    break;
                }
            }
        }
        hit
    };
    match fault {
        Some(FaultAction::Drop) => {
            state.lock().unwrap().log.push(logged);
            return Err(Dropped);
        }
        Some(FaultAction::Status(code)) => {
            let reason = match code {
                403 => "Forbidden",
                404 => "NotFound",
                409 => "Conflict",
                410 => "Expired",
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                504 => "Timeout",
                _ => "InternalError",
            };
            let (code, v) = status(code, reason, "injected fault", json!({}));
            logged.status = code;
            logged.response = v.to_string();
            state.lock().unwrap().log.push(logged);
            return Ok(respond(code, &v));
        }
        Some(FaultAction::Answer(v)) => {
            logged.status = 200;
            logged.response = v.to_string();
            state.lock().unwrap().log.push(logged);
            return Ok(respond(200, &v));
        }
        Some(FaultAction::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let (code, v, text) = {
        let mut s = state.lock().unwrap();
        let (code, v) = route(&mut s, &method, &path, &query, &content_type, &body);
        (code, v, s.reply_text.take())
    };
    logged.status = code;
    logged.response = text.unwrap_or_else(|| v.to_string());
    let answer = respond_text(code, logged.response.clone());
    let mut s = state.lock().unwrap();
    s.log.push(logged);
    s.flush_events();
    Ok(answer)
}

fn respond(code: u16, v: &Value) -> Response<Full<Bytes>> {
    respond_text(code, v.to_string())
}

fn respond_text(code: u16, text: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap()
}

fn param(query: &str, k: &str) -> Option<String> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(key, _)| *key == k).map(|(_, v)| decode(v))
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn resource_list(api_version: &str) -> Value {
    let mut resources = Vec::new();
    for (_, k, plural, namespaced) in KINDS.iter().filter(|(v, _, _, _)| *v == api_version) {
        resources.push(json!({"name": plural, "singularName": k.to_lowercase(), "namespaced": namespaced, "kind": k,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}));
        if is_crd_group(group_of(api_version)) || *k == "Deployment" || *k == "Service" {
            resources.push(
                json!({"name": format!("{plural}/status"), "singularName": "", "namespaced": namespaced, "kind": k,
                "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version, "resources": resources})
}

fn route(s: &mut State, method: &str, path: &str, query: &str, content_type: &str, body: &str) -> (u16, Value) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|x| !x.is_empty()).collect();
    let (api_version, rest): (String, &[&str]) = match segs.as_slice() {
        ["api"] => return (200, json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})),
        ["api", "v1"] => return (200, resource_list("v1")),
        ["apis"] => {
            let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (v, _, _, _) in KINDS {
                if let Some((g, ver)) = v.split_once('/')
                    && s.served(v)
                {
                    let e = groups.entry(g).or_default();
                    if !e.contains(&ver) {
                        e.push(ver);
                    }
                }
            }
            let groups: Vec<Value> = groups
                .iter()
                .map(|(g, vs)| {
                    let versions: Vec<Value> =
                        vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
                    json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
                })
                .collect();
            return (200, json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}));
        }
        ["apis", g, v] => {
            let gv = format!("{g}/{v}");
            if !s.served(&gv) || !KINDS.iter().any(|(kv, _, _, _)| *kv == gv) {
                return status(404, "NotFound", "the server could not find the requested resource", json!({}));
            }
            return (200, resource_list(&gv));
        }
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return status(404, "NotFound", "the server could not find the requested resource", json!({})),
    };
    if !s.served(&api_version) {
        return status(404, "NotFound", "the server could not find the requested resource", json!({}));
    }
    let (namespace, rest): (Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, more @ ..] if !more.is_empty() => (Some(*ns), more),
        other => (None, other),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, sub] => (*p, Some(*n), Some(*sub)),
        _ => return status(404, "NotFound", "the server could not find the requested resource", json!({})),
    };
    let Some(&(_, kind, _, namespaced)) = KINDS.iter().find(|(v, _, p, _)| *v == api_version && *p == plural) else {
        return status(404, "NotFound", "the server could not find the requested resource", json!({}));
    };
    if namespace.is_some() && !namespaced {
        return status(404, "NotFound", "the server could not find the requested resource", json!({}));
    }
    let ns = if namespaced { namespace.map(str::to_string) } else { None };
    let dry_run = param(query, "dryRun").is_some();
    let manager = param(query, "fieldManager").unwrap_or_else(|| "unknown".into());
    match (method, name) {
        ("GET", None) => list(s, &api_version, kind, namespace, query),
        ("GET", Some(n)) => {
            let key = (api_version.clone(), kind.to_string(), ns, n.to_string());
            match s.objects.get(&key) {
                Some(o) => (200, render(o)),
                None => not_found(plural, n),
            }
        }
        ("POST", None) => {
            let Ok(mut obj) = serde_json::from_str::<Value>(body) else {
                return status(400, "BadRequest", "the body is not JSON", json!({}));
            };
            obj["apiVersion"] = json!(api_version);
            obj["kind"] = json!(kind);
            if namespaced {
                obj["metadata"]["namespace"] = json!(namespace);
            }
            let key = key_of(&obj);
            if let Some(e) = s.namespace_missing(key.2.as_deref()) {
                return e;
            }
            if s.objects.contains_key(&key) {
                return status(
                    409,
                    "AlreadyExists",
                    &format!("{plural} \"{}\" already exists", key.3),
                    json!({"name": key.3, "kind": plural}),
                );
            }
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            if dry_run {
                return (201, obj);
            }
            let created = s.insert_new(obj, &manager);
            let key = key_of(&created);
            s.after_write(&key, None);
            (201, render(&s.objects[&key]))
        }
        ("PUT", Some(n)) => {
            let Ok(mut obj) = serde_json::from_str::<Value>(body) else {
                return status(400, "BadRequest", "the body is not JSON", json!({}));
            };
            obj["apiVersion"] = json!(api_version);
            obj["kind"] = json!(kind);
            let key = (api_version.clone(), kind.to_string(), ns, n.to_string());
            let Some(old) = s.objects.get(&key).cloned() else { return not_found(plural, n) };
            if let Some(rv) = obj["metadata"]["resourceVersion"].as_str()
                && Some(rv) != old.value["metadata"]["resourceVersion"].as_str()
            {
                return status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {plural} \"{n}\": the object has been modified; please apply your changes to the latest version and try again"
                    ),
                    json!({"name": n, "kind": plural}),
                );
            }
            let obj = strip_meta(obj);
            if sub == Some("status") {
                let mut value = old.value.clone();
                value["status"] = obj["status"].clone();
                let owners = old.owners.clone();
                return s.commit(key, old, value, owners, dry_run);
            }
            if dry_run {
                return (200, obj);
            }
            s.update(key, old, obj, &manager)
        }
        ("PATCH", Some(n)) => {
            let key = (api_version.clone(), kind.to_string(), ns.clone(), n.to_string());
            if content_type.starts_with("application/apply-patch") {
                if param(query, "fieldManager").is_none() {
                    return status(
                        400,
                        "BadRequest",
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                        json!({}),
                    );
                }
                let Ok(mut obj) = serde_yaml::from_str::<Value>(body) else {
                    return status(400, "BadRequest", "the body is not YAML", json!({}));
                };
                if obj["apiVersion"] != json!(api_version) || obj["kind"] != json!(kind) {
                    return status(400, "BadRequest", "apiVersion or kind does not match the path", json!({}));
                }
                if obj["metadata"]["name"] != json!(n) {
                    return status(
                        400,
                        "BadRequest",
                        "the name of the object does not match the name on the URL",
                        json!({}),
                    );
                }
                if namespaced {
                    obj["metadata"]["namespace"] = json!(namespace);
                } else if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove("namespace");
                }
                if obj["metadata"].get("resourceVersion").is_some() || obj["metadata"].get("managedFields").is_some() {
                    return status(
                        400,
                        "BadRequest",
                        "metadata.managedFields and resourceVersion must not be set in an apply",
                        json!({}),
                    );
                }
                let force = param(query, "force").as_deref() == Some("true");
                return s.apply(&manager, obj, force, dry_run);
            }
            let Some(old) = s.objects.get(&key).cloned() else { return not_found(plural, n) };
            let Ok(patch) = serde_json::from_str::<Value>(body) else {
                return status(400, "BadRequest", "the body is not JSON", json!({}));
            };
            let mut value = old.value.clone();
            merge(&mut value, &patch);
            if sub == Some("status") {
                let mut only = old.value.clone();
                only["status"] = value["status"].clone();
                let owners = old.owners.clone();
                return s.commit(key, old, only, owners, dry_run);
            }
            if dry_run {
                return (200, value);
            }
            s.update(key, old, value, &manager)
        }
        ("DELETE", Some(n)) => {
            let key = (api_version.clone(), kind.to_string(), ns, n.to_string());
            let Some(old) = s.objects.get(&key).cloned() else { return not_found(plural, n) };
            let opts: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            if let Some(uid) = opts["preconditions"]["uid"].as_str()
                && Some(uid) != old.value["metadata"]["uid"].as_str()
            {
                return status(
                    409,
                    "Conflict",
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        old.value["metadata"]["uid"].as_str().unwrap_or("")
                    ),
                    json!({"name": n, "kind": plural}),
                );
            }
            if let Some(rv) = opts["preconditions"]["resourceVersion"].as_str()
                && Some(rv) != old.value["metadata"]["resourceVersion"].as_str()
            {
                return status(
                    409,
                    "Conflict",
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        old.value["metadata"]["resourceVersion"].as_str().unwrap_or("")
                    ),
                    json!({"name": n, "kind": plural}),
                );
            }
            let dry = dry_run || opts["dryRun"].as_array().is_some_and(|a| !a.is_empty());
            if !dry {
                s.objects.remove(&key);
            }
            (200, render(&old))
        }
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            json!({}),
        ),
    }
}

fn not_found(plural: &str, name: &str) -> (u16, Value) {
    status(404, "NotFound", &format!("{plural} \"{name}\" not found"), json!({"name": name, "kind": plural}))
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// One requirement of a label selector.
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

fn parse_selector(sel: &str) -> Vec<Req> {
    // Split on commas outside parentheses.
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in sel.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    let set = |s: &str| -> Vec<String> {
        s.trim().trim_start_matches('(').trim_end_matches(')').split(',').map(|x| x.trim().to_string()).collect()
    };
    parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            if let Some((k, v)) = p.split_once("!=") {
                Req::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once(" notin ") {
                Req::NotIn(k.trim().into(), set(v))
            } else if let Some((k, v)) = p.split_once(" in ") {
                Req::In(k.trim().into(), set(v))
            } else if let Some(k) = p.strip_prefix('!') {
                Req::Absent(k.trim().into())
            } else {
                Req::Exists(p.into())
            }
        })
        .collect()
}

fn selects(reqs: &[Req], labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        Req::Eq(k, v) => get(k) == Some(v.as_str()),
        Req::Ne(k, v) => get(k) != Some(v.as_str()),
        Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Req::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
        Req::Exists(k) => get(k).is_some(),
        Req::Absent(k) => get(k).is_none(),
    })
}

/// The stored objects of one kind in one namespace (`None`: everywhere),
/// read as a range of the map the way an API server reads its index.
fn of_kind<'a>(
    objects: &'a BTreeMap<Key, Stored>,
    api_version: &'a str,
    kind: &'a str,
    namespace: Option<&'a str>,
) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
    let start = (api_version.to_string(), kind.to_string(), namespace.map(str::to_string), String::new());
    objects.range(start..).take_while(move |(k, _)| {
        k.0 == api_version && k.1 == kind && (namespace.is_none() || k.2.as_deref() == namespace)
    })
}

/// A LIST answer, paginated as an API server does with `limit` and
/// `continue` (the token names the next object; unlike etcd's snapshot, a
/// later page sees writes made since the first). The items are written
/// straight to text ([`Served`]); [`handle`] sends `s.reply_text` in place
/// of the returned value.
fn list(s: &mut State, api_version: &str, kind: &str, namespace: Option<&str>, query: &str) -> (u16, Value) {
    let reqs = parse_selector(&param(query, "labelSelector").unwrap_or_default());
    let name = param(query, "fieldSelector").and_then(|f| f.strip_prefix("metadata.name=").map(str::to_string));
    let limit = param(query, "limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0);
    let after = match param(query, "continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(token) => match continue_key(&token) {
            Some(k) => Some(k),
            None => return status(400, "BadRequest", "the continue token is not one this server wrote", json!({})),
        },
    };
    let mut items = of_kind(&s.objects, api_version, kind, namespace)
        .filter(|(k, _)| after.as_ref().is_none_or(|a| (&k.2, &k.3) >= (&a.0, &a.1)))
        .filter(|(k, _)| name.as_ref().is_none_or(|n| *n == k.3))
        .filter(|(_, o)| selects(&reqs, &o.value["metadata"]["labels"]));
    let mut text = format!("{{\"apiVersion\":{},\"items\":[", json!(api_version));
    let mut next = None;
    for (i, (k, o)) in items.by_ref().enumerate() {
        if limit.is_some_and(|l| i == l) {
            next = Some(continue_token(k));
            break;
        }
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(&Served(o)).unwrap());
    }
    let mut meta = json!({"resourceVersion": s.rv.to_string()});
    if let Some(token) = next {
        meta["continue"] = json!(token);
    }
    text.push_str(&format!("],\"kind\":{},\"metadata\":{meta}}}", json!(format!("{kind}List"))));
    s.reply_text = Some(text);
    (200, Value::Null)
}

/// The continue token of a page that stops before `k`: its namespace and
/// name, hex-encoded so the token is opaque and needs no URL escaping.
fn continue_token(k: &Key) -> String {
    let plain = format!("{}/{}", k.2.as_deref().unwrap_or(""), k.3);
    plain.bytes().map(|b| format!("{b:02x}")).collect()
}

fn continue_key(token: &str) -> Option<(Option<String>, String)> {
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| token.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    let plain = String::from_utf8(bytes?).ok()?;
    let (ns, name) = plain.split_once('/')?;
    Some(((!ns.is_empty()).then(|| ns.to_string()), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects applied by two managers, some fields shared.
    fn fill(s: &mut State) {
        for (i, ns) in ["a", "b", "c"].iter().enumerate() {
            s.insert_new(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}), "test-setup");
            for n in 0..3 {
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{n}"), "namespace": ns, "labels": {"app": "x", "n": n.to_string()},
                        "annotations": {"z": "1"}},
                    "data": {"k": "v", "nested": format!("{i}")}});
                assert_eq!(s.apply("ztp", cm.clone(), false, false).0, 201);
                let mut other = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{n}"), "namespace": ns, "labels": {"team": "y"}}, "data": {"extra": "1"}});
                if n == 1 {
                    other["data"]["k"] = json!("v");
                }
                assert_eq!(s.apply("kubectl", other, n == 1, false).0, 200);
            }
        }
    }

    #[test]
    fn a_served_object_is_the_rendered_object_as_text() {
        let fake = FakeKube::start();
        let mut s = fake.state.lock().unwrap();
        fill(&mut s);
        let mut seen = 0;
        for o in s.objects.values() {
            assert_eq!(serde_json::to_string(&Served(o)).unwrap(), render(o).to_string());
            seen += usize::from(o.owners.len() == 2);
        }
        assert!(seen >= 6, "the fixture has objects of two managers");
    }

    #[test]
    fn pages_hold_every_object_once_in_order() {
        let fake = FakeKube::start();
        let mut s = fake.state.lock().unwrap();
        fill(&mut s);
        let (code, _) = list(&mut s, "v1", "ConfigMap", None, "");
        assert_eq!(code, 200);
        let whole: Value = serde_json::from_str(&s.reply_text.take().unwrap()).unwrap();
        assert!(whole["metadata"].get("continue").is_none());
        let mut paged = Vec::new();
        let mut query = "limit=2".to_string();
        loop {
            let (code, _) = list(&mut s, "v1", "ConfigMap", None, &query);
            assert_eq!(code, 200);
            let page: Value = serde_json::from_str(&s.reply_text.take().unwrap()).unwrap();
            assert!(page["items"].as_array().unwrap().len() <= 2);
            paged.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["metadata"]["continue"].as_str() {
                Some(token) => query = format!("limit=2&continue={token}"),
                None => break,
            }
        }
        assert_eq!(&Value::Array(paged), &whole["items"]);
        assert_eq!(whole["items"].as_array().unwrap().len(), 9);
        let (code, _) = list(&mut s, "v1", "ConfigMap", None, "limit=2&continue=zz");
        assert_eq!(code, 400);
    }
}
