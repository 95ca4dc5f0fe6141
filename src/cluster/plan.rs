//! Planning: what an apply would change, read from the live cluster.
//!
//! [`compute`] is two stages. [`read_live`] runs preflight (the kinds are
//! served, the parent is ztp's) and reads the live objects with one LIST
//! per kind × namespace (concurrently, in pages, no label selector: members
//! and the objects of names ztp would take come in one answer); it needs
//! only the names and kinds of the desired objects, so the caller can
//! build the objects meanwhile. [`decide`] checks the Services ztp labels
//! exist, decides per object with the request-free unchanged test (on
//! every core), and dry-runs only what changes, a few at a time.
//! [`render`] prints it the way `terraform plan` does; [`to_json`] is the
//! same for machines.

use super::applyset::{self, PART_OF_LABEL, Parent, Record};
use super::client::{Cluster, Error, Resource};
use super::{at, diff, meta_str};
use crate::manifest::{Layer, Manifest, Ownership};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Every kind ztp writes or reads, by `(apiVersion, kind)`, with the
/// product that installs it (for the preflight message).
pub const KINDS: &[(&str, &str, &str)] = &[
    ("v1", "Namespace", "Kubernetes"),
    ("v1", "Service", "Kubernetes"),
    ("v1", "Secret", "Kubernetes"),
    ("coordination.k8s.io/v1", "Lease", "Kubernetes"),
    ("apps/v1", "Deployment", "Kubernetes"),
    ("networking.k8s.io/v1", "NetworkPolicy", "Kubernetes"),
    ("cilium.io/v2", "CiliumNetworkPolicy", "Cilium"),
    ("cilium.io/v2", "CiliumClusterwideNetworkPolicy", "Cilium"),
    ("security.istio.io/v1", "PeerAuthentication", "Istio"),
    ("security.istio.io/v1", "AuthorizationPolicy", "Istio"),
    ("gateway.networking.k8s.io/v1", "Gateway", "the Gateway API CRDs"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", "the Gateway API CRDs"),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant", "the Gateway API CRDs"),
];

/// What happens to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    Unchanged,
}

/// One object of the plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The apply wave (layer number plus step).
    pub wave: u8,
    /// Namespaces and Services: only ztp's labels are written.
    pub labels_only: bool,
    /// What is applied (creates and updates).
    pub desired: Option<Value>,
    /// The live object's uid, resourceVersion and content digest.
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub live_digest: Option<String>,
    /// Stripped live object and dry-run result, for the diff.
    #[serde(skip)]
    pub before: Value,
    #[serde(skip)]
    pub after: Value,
    /// `(field, message)` of conflicts with other field managers.
    pub conflicts: Vec<(String, String)>,
    /// An allow policy that admits less than before is first widened to
    /// admit both (this body, at its wave) and narrowed to `desired` only
    /// after every upsert and waypoint change: make-before-break.
    #[serde(default)]
    pub widen: Option<Value>,
}

impl Change {
    pub fn id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    /// Where the change runs: upserts by wave; Service unbinding with the
    /// bindings; deletes after every upsert, in reverse wave order; a
    /// Namespace leaves the mesh only after its policies are gone.
    pub fn order(&self) -> (u8, u8) {
        match (self.action, self.labels_only, self.kind.as_str()) {
            (Action::Delete, _, _) => (1, u8::MAX - self.wave),
            (_, true, "Namespace")
                if self.desired.as_ref().is_some_and(|d| at(d, &["metadata", "labels"]).is_null()) =>
            {
                (2, 0)
            }
            _ => (0, self.wave),
        }
    }
}

/// The plan of one stack.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub ztp_version: String,
    pub server: String,
    pub stack: String,
    /// A plan of `destroy`: every member and the parent go.
    pub destroy: bool,
    pub parent: ParentState,
    /// What the parent records now, and what it records after the apply.
    pub old_record: RecordSet,
    pub new_record: RecordSet,
    /// Every object in apply order (unchanged ones too).
    pub changes: Vec<Change>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParentState {
    pub name: String,
    pub namespace: String,
    pub id: String,
    pub resource_version: Option<String>,
}

/// A serializable [`Record`].
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordSet {
    pub group_kinds: BTreeSet<String>,
    pub namespaces: BTreeSet<String>,
    pub labelled: BTreeSet<String>,
}

impl From<&Record> for RecordSet {
    fn from(r: &Record) -> RecordSet {
        RecordSet { group_kinds: r.group_kinds.clone(), namespaces: r.namespaces.clone(), labelled: r.labelled.clone() }
    }
}

impl From<&RecordSet> for Record {
    fn from(r: &RecordSet) -> Record {
        Record { group_kinds: r.group_kinds.clone(), namespaces: r.namespaces.clone(), labelled: r.labelled.clone() }
    }
}

pub const FORMAT_VERSION: u32 = 1;

/// One desired object, as compiled.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Desired {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub wave: u8,
    pub labels_only: bool,
    pub object: Value,
}

impl Desired {
    /// The desired objects of `ms`.
    pub fn of(ms: &[Manifest], applyset_id: &str) -> Vec<Desired> {
        Desired::with_objects(Desired::heads(ms), Desired::objects(ms, applyset_id))
    }

    /// Every field of each desired object but the object itself (`null`),
    /// which is all [`read_live`] needs.
    pub fn heads(ms: &[Manifest]) -> Vec<Desired> {
        ms.iter()
            .map(|m| Desired {
                api_version: m.api_version.to_string(),
                kind: m.kind.to_string(),
                namespace: m.namespace.clone(),
                name: m.name.clone(),
                wave: m.wave(),
                labels_only: m.ownership == Ownership::LabelsOnly,
                object: Value::Null,
            })
            .collect()
    }

    /// The objects ztp applies for `ms`, in order, built on every core.
    pub fn objects(ms: &[Manifest], applyset_id: &str) -> Vec<Value> {
        let built = crate::par::map(ms, |m| applyset::desired_object(m, applyset_id));
        ms.iter().zip(built).map(|(m, o)| o.unwrap_or_else(|| applyset::desired_object(m, applyset_id))).collect()
    }

    /// [`Desired::heads`] with their [`Desired::objects`].
    pub fn with_objects(heads: Vec<Desired>, objects: Vec<Value>) -> Vec<Desired> {
        heads.into_iter().zip(objects).map(|(d, object)| Desired { object, ..d }).collect()
    }
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Cluster(#[from] Error),
    #[error("{0}")]
    Preflight(String),
}

/// What `compute` needs besides the desired objects.
pub struct Inputs<'a> {
    pub stack: &'a str,
    pub parent: Parent,
    pub adopt: bool,
    /// `destroy`: nothing is desired; every member goes.
    pub destroy: bool,
}

/// The served kinds, by `(apiVersion, kind)`.
pub type Kinds = BTreeMap<(String, String), Resource>;

/// Preflight: every kind ztp writes is served; otherwise one error naming
/// what to install.
pub async fn discover(cluster: &Cluster) -> Result<Kinds, PlanError> {
    let wanted: Vec<(String, String)> = KINDS.iter().map(|(v, k, _)| (v.to_string(), k.to_string())).collect();
    match cluster.discover(&wanted).await? {
        Ok(found) => Ok(found),
        Err(missing) => {
            let lines: Vec<String> = missing
                .iter()
                .map(|(v, k)| {
                    let from = KINDS.iter().find(|(kv, kk, _)| kv == v && kk == k).map_or("", |(_, _, p)| p);
                    format!("  {k} ({v}), installed by {from}")
                })
                .collect();
            Err(PlanError::Preflight(format!(
                "the cluster does not serve kinds ztp writes:\n{}\ninstall them (Cilium, Istio ambient and the Gateway API CRDs) and run again",
                lines.join("\n")
            )))
        }
    }
}

fn resource<'k>(kinds: &'k Kinds, api_version: &str, kind: &str) -> Result<&'k Resource, PlanError> {
    kinds
        .get(&(api_version.to_string(), kind.to_string()))
        .ok_or_else(|| PlanError::Preflight(format!("the cluster does not serve {kind} ({api_version})")))
}

/// The `(apiVersion, kind)` of a recorded `Kind.group`.
fn kind_of_group_kind(gk: &str) -> Option<(&'static str, &'static str)> {
    KINDS
        .iter()
        .find(|(v, k, _)| {
            let group = v.rsplit_once('/').map_or("", |(g, _)| g);
            let spelled = if group.is_empty() { k.to_string() } else { format!("{k}.{group}") };
            spelled == gk
        })
        .map(|(v, k, _)| (*v, *k))
}

fn key(kind: &str, namespace: Option<&str>, name: &str) -> (String, Option<String>, String) {
    (kind.to_string(), namespace.map(str::to_string), name.to_string())
}

fn labelled_id(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// A namespaced kind the stack has in more namespaces than this is listed
/// cluster-wide, in one request, instead of once per namespace.
const WIDE_LIST_NAMESPACES: usize = 16;

/// Requests a plan has in flight at once: LISTs, and then dry-runs.
const REQUESTS_AT_ONCE: usize = 8;

/// Reads the cluster and decides every object's action.
pub async fn compute(cluster: &Cluster, kinds: &Kinds, desired: &[Desired], i: &Inputs<'_>) -> Result<Plan, PlanError> {
    let state = read_live(cluster, kinds, desired, i).await?;
    decide(cluster, kinds, desired, state, i).await
}

/// The objects the plan is for: none when it destroys.
fn wanted<'d>(desired: &'d [Desired], i: &Inputs<'_>) -> Vec<&'d Desired> {
    if i.destroy { Vec::new() } else { desired.iter().collect() }
}

/// What the cluster holds of a stack, before anything is decided.
pub struct LiveState {
    parent_live: Option<Value>,
    old: Record,
    new: Record,
    /// Members by (kind, namespace, name), with their apiVersion.
    live: BTreeMap<(String, Option<String>, String), (&'static str, Live)>,
    /// The rest of what the LISTs found, for the names ztp would take.
    others: BTreeMap<(String, Option<String>, String), Live>,
}

/// The parent and the live objects of the kinds and namespaces of the old
/// record and of `desired`. Only the names and kinds of `desired` are
/// read, not its objects: a caller can build those meanwhile.
pub async fn read_live(
    cluster: &Cluster,
    kinds: &Kinds,
    desired: &[Desired],
    i: &Inputs<'_>,
) -> Result<LiveState, PlanError> {
    let secret = resource(kinds, "v1", "Secret")?;
    let parent_live = cluster.get(secret, Some(&i.parent.namespace), &i.parent.name).await?;
    if let Some(p) = &parent_live {
        i.parent.check_live(p).map_err(PlanError::Preflight)?;
    }
    let old = Record::of_live(parent_live.as_ref(), &i.parent.namespace);
    let desired = wanted(desired, i);
    let mut new = Record::default();
    new.namespaces.insert(i.parent.namespace.clone());
    for d in &desired {
        if d.labels_only {
            new.labelled.insert(labelled_id(&d.kind, d.namespace.as_deref(), &d.name));
        } else {
            let group = d.api_version.rsplit_once('/').map_or("", |(g, _)| g);
            new.group_kinds.insert(if group.is_empty() { d.kind.clone() } else { format!("{}.{group}", d.kind) });
            if let Some(ns) = &d.namespace {
                new.namespaces.insert(ns.clone());
            }
        }
    }

    // The live objects: one LIST per kind and namespace, concurrently, and
    // no label selector, so one answer holds both the stack's members and
    // any object of a name ztp would create or label; no per-object GETs.
    // A kind the stack has in many namespaces is listed once cluster-wide
    // instead, and per namespace only if that is forbidden.
    let mut scopes: BTreeMap<(&'static str, &'static str), BTreeSet<Option<String>>> = BTreeMap::new();
    let wide = old.union(&new);
    for gk in &wide.group_kinds {
        let Some((v, k)) = kind_of_group_kind(gk) else {
            return Err(PlanError::Preflight(format!(
                "the ApplySet parent records `{gk}`, a kind this ztp does not know: was it written by a newer ztp?"
            )));
        };
        let namespaced = resource(kinds, v, k)?.namespaced;
        let of_kind = scopes.entry((v, k)).or_default();
        if namespaced {
            of_kind.extend(wide.namespaces.iter().cloned().map(Some));
        } else {
            of_kind.insert(None);
        }
    }
    for d in desired.iter().filter(|d| d.labels_only) {
        let Some(&(v, k, _)) = KINDS.iter().find(|(v, k, _)| *v == d.api_version && *k == d.kind) else {
            return Err(PlanError::Preflight(format!("ztp does not know the kind {} {}", d.api_version, d.kind)));
        };
        let namespace = if resource(kinds, v, k)?.namespaced { d.namespace.clone() } else { None };
        scopes.entry((v, k)).or_default().insert(namespace);
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(REQUESTS_AT_ONCE));
    let list = |v: &'static str, k: &'static str, ns: Option<String>| {
        let (c, r, limit) = (cluster.clone(), resource(kinds, v, k).cloned(), limit.clone());
        async move {
            let _permit = limit.acquire_owned().await;
            let items = match r {
                Ok(r) => c.list_each(&r, ns.as_deref(), "", Live::of).await.map_err(PlanError::from),
                Err(e) => Err(e),
            };
            (v, k, items)
        }
    };
    let joined =
        |j: Result<_, tokio::task::JoinError>| j.map_err(|e| PlanError::Preflight(format!("internal error: {e}")));
    let mut lists = tokio::task::JoinSet::new();
    let mut narrow = Vec::new();
    for ((v, k), namespaces) in &scopes {
        if namespaces.len() > WIDE_LIST_NAMESPACES {
            lists.spawn(list(v, k, None));
        } else {
            narrow.extend(namespaces.iter().map(|ns| (*v, *k, ns.clone())));
        }
    }
    let mut found: Vec<(&'static str, &'static str, Vec<Live>)> = Vec::new();
    while let Some(j) = lists.join_next().await {
        let (v, k, items) = joined(j)?;
        let namespaces = scopes.get(&(v, k));
        match items {
            Ok(items) => {
                let inside = |o: &Live| {
                    namespaces.is_some_and(|n| n.contains(&meta_str(&o.content, "namespace").map(str::to_string)))
                };
                found.push((v, k, items.into_iter().filter(inside).collect()));
            }
            // Not allowed cluster-wide: this kind namespace by namespace.
            Err(PlanError::Cluster(e)) if e.code() == Some(403) => {
                narrow.extend(namespaces.into_iter().flatten().map(|ns| (v, k, ns.clone())));
            }
            Err(e) => return Err(e),
        }
    }
    for (v, k, ns) in narrow {
        lists.spawn(list(v, k, ns));
    }
    while let Some(j) = lists.join_next().await {
        let (v, k, items) = joined(j)?;
        found.push((v, k, items?));
    }

    // Members by (kind, namespace, name), with their apiVersion; the rest
    // of what the LISTs found, for the names ztp would take. Each is taken
    // out as it is planned: the members left over are the deletes.
    let mut live: BTreeMap<(String, Option<String>, String), (&'static str, Live)> = BTreeMap::new();
    let mut others: BTreeMap<(String, Option<String>, String), Live> = BTreeMap::new();
    for (v, kind, items) in found {
        for item in items {
            let o = &item.content;
            let k = key(kind, meta_str(o, "namespace"), meta_str(o, "name").unwrap_or_default());
            let member = at(o, &["metadata", "labels", PART_OF_LABEL]).as_str() == Some(i.parent.id.as_str());
            if member {
                live.insert(k, (v, item));
            } else {
                others.insert(k, item);
            }
        }
    }
    Ok(LiveState { parent_live, old, new, live, others })
}

/// Every object's action against what [`read_live`] found, with a dry-run
/// of each one that changes.
pub async fn decide(
    cluster: &Cluster,
    kinds: &Kinds,
    desired: &[Desired],
    state: LiveState,
    i: &Inputs<'_>,
) -> Result<Plan, PlanError> {
    let LiveState { parent_live, old, new, mut live, mut others } = state;
    let desired = wanted(desired, i);

    // Each desired object with its live one. Comparing them is the CPU
    // work of a plan, done on every core; dry-runs go after, concurrently.
    let mut paired: Vec<(&Desired, Option<Live>)> = Vec::new();
    let mut foreign = Vec::new();
    let mut missing_services = Vec::new();
    for d in &desired {
        let k = key(&d.kind, d.namespace.as_deref(), &d.name);
        let current = match live.remove(&k) {
            Some((_, v)) => Some(v),
            None => {
                let got = others.remove(&k);
                if let Some(g) = &got
                    && !d.labels_only
                {
                    let owner = at(&g.content, &["metadata", "labels", PART_OF_LABEL]).as_str();
                    let what = match owner {
                        Some(o) => format!("it belongs to another ApplySet ({o})"),
                        None => "it is not part of any ApplySet".to_string(),
                    };
                    if !i.adopt {
                        foreign.push(format!("  {} {}: {what}", d.kind, ns_name(d.namespace.as_deref(), &d.name)));
                        continue;
                    }
                }
                got
            }
        };
        if current.is_none() && d.labels_only && d.kind == "Service" {
            missing_services.push(format!("  Service {}", ns_name(d.namespace.as_deref(), &d.name)));
            continue;
        }
        paired.push((*d, current));
    }
    let compared = crate::par::map(&paired, |(d, l)| Compared::of(d, l.as_ref()));
    let mut changes = Vec::new();
    let mut to_dry_run = Vec::new();
    let mut created_namespaces = BTreeSet::new();
    for ((d, current), compared) in paired.into_iter().zip(compared) {
        let compared = compared.unwrap_or_else(|| Compared::of(d, current.as_ref()));
        let mut c = change(d, current, compared);
        if c.kind == "Namespace" && c.action == Action::Create {
            created_namespaces.insert(c.name.clone());
        }
        let in_new_namespace = c.namespace.as_ref().is_some_and(|n| created_namespaces.contains(n));
        if c.action == Action::Create && in_new_namespace {
            // The server cannot dry-run into a namespace that does not
            // exist yet: the plan shows what will be sent.
            c.after = diff::strip(&d.object);
        } else if c.action != Action::Unchanged {
            to_dry_run.push((c, resource(kinds, &d.api_version, &d.kind)?.clone()));
            continue;
        }
        changes.push(c);
    }
    if !missing_services.is_empty() {
        return Err(PlanError::Preflight(format!(
            "ztp labels these Services but they do not exist (ztp never creates a Service; deploy the workload first):\n{}",
            missing_services.join("\n")
        )));
    }
    if !foreign.is_empty() {
        return Err(PlanError::Preflight(format!(
            "these objects exist but are not ztp's; ztp will not overwrite them without --adopt:\n{}",
            foreign.join("\n")
        )));
    }

    // Dry-runs return in any order; the changes are sorted below.
    changes.extend(dry_run_all(cluster, to_dry_run).await?);

    // Members no longer desired are deleted.
    for (k, (v, obj)) in live {
        let wave = wave_of(&k.0);
        changes.push(Change {
            action: Action::Delete,
            api_version: v.to_string(),
            kind: k.0,
            namespace: k.1,
            name: k.2,
            wave,
            labels_only: false,
            desired: None,
            live_digest: Some(diff::stripped_digest(&obj.content)),
            uid: obj.uid,
            resource_version: obj.resource_version,
            before: obj.content,
            after: Value::Null,
            conflicts: Vec::new(),
            widen: None,
        });
    }

    // Objects ztp labelled before and labels no more: take its labels off.
    for id in old.labelled.difference(&new.labelled) {
        let mut parts = id.split('/');
        let (Some(kind), Some(a), b) = (parts.next(), parts.next(), parts.next()) else { continue };
        let (namespace, name) = match b {
            Some(name) => (Some(a), name),
            None => (None, a),
        };
        let Some((v, _, _)) = KINDS.iter().find(|(_, k, _)| *k == kind) else { continue };
        let r = resource(kinds, v, kind)?;
        let Some(current) = cluster.get(r, namespace, name).await? else { continue };
        let body = applyset::unlabel_object(v, kind, namespace, name);
        let mut c = Change {
            action: Action::Update,
            api_version: v.to_string(),
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            wave: if kind == "Service" { Layer::L7.number() + 2 } else { 0 },
            labels_only: true,
            desired: Some(body),
            uid: meta_str(&current, "uid").map(str::to_string),
            resource_version: meta_str(&current, "resourceVersion").map(str::to_string),
            live_digest: Some(diff::content_digest(&current)),
            before: labels_view(&current),
            after: Value::Null,
            conflicts: Vec::new(),
            widen: None,
        };
        dry_run(cluster, r, &mut c).await?;
        if c.before == c.after {
            c.action = Action::Unchanged;
        }
        changes.push(c);
    }

    changes
        .sort_by(|a, b| (a.order(), &a.kind, &a.namespace, &a.name).cmp(&(b.order(), &b.kind, &b.namespace, &b.name)));
    Ok(Plan {
        format_version: FORMAT_VERSION,
        ztp_version: env!("CARGO_PKG_VERSION").to_string(),
        server: cluster.server.clone(),
        stack: i.stack.to_string(),
        destroy: i.destroy,
        parent: ParentState {
            name: i.parent.name.clone(),
            namespace: i.parent.namespace.clone(),
            id: i.parent.id.clone(),
            resource_version: parent_live.as_ref().and_then(|p| meta_str(p, "resourceVersion")).map(str::to_string),
        },
        old_record: (&old).into(),
        new_record: (&new).into(),
        changes,
    })
}

fn ns_name(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// The wave of a kind ztp no longer emits (for deletes): its layer's.
fn wave_of(kind: &str) -> u8 {
    match kind {
        "CiliumClusterwideNetworkPolicy" => Layer::ClusterBaseline.number(),
        "CiliumNetworkPolicy" => Layer::WorkloadNetwork.number(),
        "PeerAuthentication" | "AuthorizationPolicy" => Layer::MeshIdentity.number(),
        "Gateway" | "HTTPRoute" | "ReferenceGrant" => Layer::Ingress.number(),
        "NetworkPolicy" => Layer::DefaultDeny.number(),
        _ => Layer::Namespaces.number(),
    }
}

/// Only the labels of an object (for labelled-only objects' diffs).
fn labels_view(v: &Value) -> Value {
    json!({ "metadata": { "labels": at(v, &["metadata", "labels"]) } })
}

/// A live object as planning reads it: its identity, and its content
/// [`diff::strip`]ped of what the server owns, which is what the unchanged
/// test, the diff and the drift digest all read.
struct Live {
    uid: Option<String>,
    resource_version: Option<String>,
    content: Value,
}

impl Live {
    fn of(v: Value) -> Live {
        Live {
            uid: meta_str(&v, "uid").map(str::to_string),
            resource_version: meta_str(&v, "resourceVersion").map(str::to_string),
            content: diff::strip_owned(v),
        }
    }
}

/// What comparing a desired object with its live one finds, by
/// reference: the costly part of [`change`], which runs on every core.
struct Compared {
    action: Action,
    widen: Option<Value>,
    live_digest: Option<String>,
}

impl Compared {
    fn of(d: &Desired, live: Option<&Live>) -> Compared {
        let action = match live {
            None => Action::Create,
            Some(l) if d.labels_only && diff::is_subset(&d.object, &l.content) => Action::Unchanged,
            Some(l) if !d.labels_only && diff::unchanged(&d.object, &l.content) => Action::Unchanged,
            Some(_) => Action::Update,
        };
        let widen = match (action, live) {
            (Action::Update, Some(l)) => widened(&d.object, &l.content),
            _ => None,
        };
        Compared { action, widen, live_digest: live.map(|l| diff::stripped_digest(&l.content)) }
    }
}

fn change(d: &Desired, live: Option<Live>, compared: Compared) -> Change {
    let Compared { action, widen, live_digest } = compared;
    let (uid, resource_version, before) = match live {
        Some(l) => {
            let before = if d.labels_only { labels_view(&l.content) } else { l.content };
            (l.uid, l.resource_version, before)
        }
        None => (None, None, Value::Null),
    };
    Change {
        action,
        api_version: d.api_version.clone(),
        kind: d.kind.clone(),
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        wave: d.wave,
        labels_only: d.labels_only,
        // An owned object that stays as it is is not written: its body
        // would be a second copy of the desired object for nothing.
        desired: (action != Action::Unchanged || d.labels_only).then(|| d.object.clone()),
        uid,
        resource_version,
        live_digest,
        before,
        after: Value::Null,
        conflicts: Vec::new(),
        widen,
    }
}

/// The allow lists of a policy whose rules, unioned, admit what the live
/// and the desired version admit; `None` when desired already admits
/// everything live does, or the two select different things.
fn widened(desired: &Value, live: &Value) -> Option<Value> {
    let kind = at(desired, &["kind"]).as_str()?;
    let (lists, same): (&[&str], &[&str]) = match kind {
        "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy" => (&["ingress", "egress"], &["endpointSelector"]),
        "AuthorizationPolicy" => {
            let allow = |v: &Value| at(v, &["spec", "action"]).as_str().unwrap_or("ALLOW") == "ALLOW";
            if !allow(desired) || !allow(live) {
                return None;
            }
            (&["rules"], &["selector", "targetRefs", "targetRef"])
        }
        _ => return None,
    };
    if same.iter().any(|k| at(desired, &["spec", k]) != at(live, &["spec", k])) {
        return None;
    }
    let mut body = desired.clone();
    let mut wider = false;
    for key in lists {
        let new = at(desired, &["spec", key]).as_array().cloned().unwrap_or_default();
        let mut union = new.clone();
        for rule in at(live, &["spec", key]).as_array().into_iter().flatten() {
            if !union.contains(rule) {
                union.push(rule.clone());
                wider = true;
            }
        }
        if union.len() != new.len()
            && let Some(spec) = body.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert((*key).to_string(), Value::Array(union));
        }
    }
    wider.then_some(body)
}

/// A server-side-apply dry-run: the object as it would be, and any
/// conflicts with other field managers.
/// The dry-runs of `pending`, up to [`REQUESTS_AT_ONCE`] at a time, each
/// change back with its result. When several are rejected, the error is
/// that of the first in `pending`, however the requests finish.
async fn dry_run_all(cluster: &Cluster, pending: Vec<(Change, Resource)>) -> Result<Vec<Change>, PlanError> {
    let limit = Arc::new(tokio::sync::Semaphore::new(REQUESTS_AT_ONCE));
    let mut runs = tokio::task::JoinSet::new();
    for (n, (mut c, r)) in pending.into_iter().enumerate() {
        let (cluster, limit) = (cluster.clone(), limit.clone());
        runs.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let done = dry_run(&cluster, &r, &mut c).await;
            (n, c, done)
        });
    }
    let mut changes = Vec::new();
    let mut first_error: Option<(usize, PlanError)> = None;
    while let Some(j) = runs.join_next().await {
        let (n, c, done) = j.map_err(|e| PlanError::Preflight(format!("internal error: {e}")))?;
        changes.push(c);
        if let Err(e) = done
            && first_error.as_ref().is_none_or(|(m, _)| n < *m)
        {
            first_error = Some((n, e));
        }
    }
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok(changes),
    }
}

async fn dry_run(cluster: &Cluster, r: &Resource, c: &mut Change) -> Result<(), PlanError> {
    let Some(body) = &c.desired else { return Ok(()) };
    match cluster.apply(r, body, true, false).await {
        Ok(after) => {
            c.after = if c.labels_only { labels_view(&after) } else { diff::strip(&after) };
            Ok(())
        }
        Err(e) => match e.conflicts() {
            Some(causes) => {
                c.conflicts = causes.iter().map(|(_, field, msg)| (field.clone(), msg.clone())).collect();
                // The forced result, to show what taking the fields would change.
                let forced = cluster.apply(r, body, true, true).await?;
                c.after = if c.labels_only { labels_view(&forced) } else { diff::strip(&forced) };
                Ok(())
            }
            None => Err(PlanError::Preflight(format!("the API server rejects {}: {e}", c.id()))),
        },
    }
}

/// Counts of a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Delete => s.delete += 1,
                Action::Unchanged => s.unchanged += 1,
            }
        }
        s
    }

    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::Unchanged) || self.record_changes()
    }

    /// Whether the parent itself must be written.
    pub fn record_changes(&self) -> bool {
        if self.destroy {
            return self.parent.resource_version.is_some();
        }
        self.parent.resource_version.is_none() || self.old_record != self.new_record
    }

    pub fn conflicts(&self) -> usize {
        self.changes.iter().map(|c| c.conflicts.len()).sum()
    }
}

/// The plan as `terraform plan` shows one.
pub fn render(plan: &Plan, context: usize, color: bool) -> String {
    let s = plan.summary();
    if !plan.has_changes() {
        return "No changes. The cluster matches the configuration.\n".to_string();
    }
    let mut out = String::from("ztp will perform the following actions:\n");
    let mut group = None;
    for c in plan.changes.iter().filter(|c| c.action != Action::Unchanged) {
        let g = c.order();
        if group != Some(g) {
            group = Some(g);
            let title = match g.0 {
                0 => format!("wave {}", c.wave),
                1 => format!("prune, wave {}", c.wave),
                _ => "after prune".to_string(),
            };
            out.push_str(&format!("\n# {title}\n"));
        }
        let (sign, verb, paint) = match (c.action, c.labels_only) {
            (Action::Create, false) => ("+", "will be created", "\x1b[32m"),
            (Action::Create, true) => ("+", "will be created with ztp's labels", "\x1b[32m"),
            (Action::Update, false) => ("~", "will be updated in place", "\x1b[33m"),
            (Action::Update, true) => ("~", "labels will change", "\x1b[33m"),
            (Action::Delete, _) => ("-", "will be deleted", "\x1b[31m"),
            (Action::Unchanged, _) => (" ", "", ""),
        };
        let verb = if c.widen.is_some() {
            format!("{verb} (first widened to admit old and new, narrowed after the waypoint changes)")
        } else {
            verb.to_string()
        };
        if color {
            out.push_str(&format!("  {paint}{sign}\x1b[0m {} {verb}\n", c.id()));
        } else {
            out.push_str(&format!("  {sign} {} {verb}\n", c.id()));
        }
        let (before, after) = match c.action {
            Action::Delete => (diff::yaml(&c.before), String::new()),
            _ => (diff::yaml(&c.before), diff::yaml(&c.after)),
        };
        let ctx = if c.action == Action::Update { context } else { usize::MAX / 2 };
        out.push_str(&diff::render(&before, &after, ctx, "      ", color));
        for (field, msg) in &c.conflicts {
            out.push_str(&format!("      ! conflict on {field}: {msg}\n"));
        }
    }
    if plan.conflicts() > 0 {
        out.push_str(&format!(
            "\n{} with other field managers: `ztp apply` fails on them unless --force-conflicts takes the fields.\n",
            if plan.conflicts() == 1 { "1 conflict".to_string() } else { format!("{} conflicts", plan.conflicts()) }
        ));
    }
    out.push_str(&format!(
        "\nPlan: {} to create, {} to update, {} to delete. {} unchanged.\n",
        s.create, s.update, s.delete, s.unchanged
    ));
    out
}

/// The plan for machines: every object with its action, and the summary.
pub fn to_json(plan: &Plan) -> String {
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .map(|c| {
            json!({
                "action": c.action,
                "apiVersion": c.api_version,
                "kind": c.kind,
                "namespace": c.namespace,
                "name": c.name,
                "wave": c.wave,
                "labelsOnly": c.labels_only,
                "widenedFirst": c.widen.is_some(),
                "before": c.before,
                "after": c.after,
                "conflicts": c.conflicts.iter().map(|(f, m)| json!({"field": f, "message": m})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let v = json!({
        "formatVersion": plan.format_version,
        "ztpVersion": plan.ztp_version,
        "server": plan.server,
        "applyset": { "id": plan.parent.id, "parent": format!("secret/{}", plan.parent.name), "namespace": plan.parent.namespace },
        "changes": changes,
        "summary": plan.summary(),
        "hasChanges": plan.has_changes(),
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(action: &str, principals: &[&str]) -> Value {
        let rules: Vec<Value> = principals.iter().map(|p| json!({"from": [{"source": {"principals": [p]}}]})).collect();
        json!({"kind": "AuthorizationPolicy", "metadata": {"name": "l4", "namespace": "a"},
            "spec": {"action": action, "selector": {"matchLabels": {"app": "y"}}, "rules": rules}})
    }

    #[test]
    fn a_policy_that_admits_less_is_widened_to_the_union() {
        let live = ap("ALLOW", &["gateway"]);
        let desired = ap("ALLOW", &["waypoint"]);
        let w = widened(&desired, &live).unwrap();
        assert_eq!(w["spec"]["rules"].as_array().unwrap().len(), 2);
        assert_eq!(w["spec"]["rules"][0], desired["spec"]["rules"][0]);
        assert_eq!(w["spec"]["rules"][1], live["spec"]["rules"][0]);
        // Admitting more needs no widening.
        assert!(widened(&ap("ALLOW", &["gateway", "waypoint"]), &live).is_none());
        // DENY policies and changed selectors are plain updates.
        assert!(widened(&ap("DENY", &["waypoint"]), &ap("DENY", &["gateway"])).is_none());
        let mut other = desired.clone();
        other["spec"]["selector"] = json!({"matchLabels": {"app": "z"}});
        assert!(widened(&other, &live).is_none());
    }

    #[test]
    fn cilium_policies_widen_each_direction() {
        let cnp = |ingress: Value, egress: Value| json!({"kind": "CiliumNetworkPolicy", "spec": {"endpointSelector": {}, "ingress": ingress, "egress": egress}});
        let live = cnp(json!([{"fromEndpoints": [{"matchLabels": {"app": "a"}}]}]), json!([{"toEntities": ["world"]}]));
        let desired =
            cnp(json!([{"fromEndpoints": [{"matchLabels": {"app": "b"}}]}]), json!([{"toEntities": ["world"]}]));
        let w = widened(&desired, &live).unwrap();
        assert_eq!(w["spec"]["ingress"].as_array().unwrap().len(), 2);
        assert_eq!(w["spec"]["egress"].as_array().unwrap().len(), 1);
        assert!(widened(&json!({"kind": "Service"}), &live).is_none());
    }
}
