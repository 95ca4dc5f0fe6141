//! Kubernetes objects as ztp emits them, and their deterministic text.
//!
//! A [`Manifest`] is one object with the layer and step it is applied in.
//! Backends build them; [`sort`] puts them in apply order (layer, step,
//! kind, namespace, name); [`to_yaml`] and [`to_json`] render them. Maps are
//! `serde_json` maps (sorted by key), so the same objects always give the
//! same bytes. An object's body is held as compact JSON text ([`Body`])
//! and read back into a value only while it is rendered or compared.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The layers of DESIGN.md §3, in apply order. Each is one output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Namespaces,
    ClusterBaseline,
    WorkloadNetwork,
    MeshIdentity,
    L7,
    Ingress,
    DefaultDeny,
}

impl Layer {
    pub const ALL: [Layer; 7] = [
        Layer::Namespaces,
        Layer::ClusterBaseline,
        Layer::WorkloadNetwork,
        Layer::MeshIdentity,
        Layer::L7,
        Layer::Ingress,
        Layer::DefaultDeny,
    ];

    /// The layer's number: its file prefix and its first sync wave.
    pub fn number(self) -> u8 {
        match self {
            Layer::Namespaces => 0,
            Layer::ClusterBaseline => 10,
            Layer::WorkloadNetwork => 20,
            Layer::MeshIdentity => 30,
            Layer::L7 => 40,
            Layer::Ingress => 50,
            Layer::DefaultDeny => 90,
        }
    }

    /// `00-namespaces` … `90-default-deny`.
    pub fn file_stem(self) -> String {
        let name = match self {
            Layer::Namespaces => "namespaces",
            Layer::ClusterBaseline => "cluster-baseline",
            Layer::WorkloadNetwork => "workload-network",
            Layer::MeshIdentity => "mesh-identity",
            Layer::L7 => "l7",
            Layer::Ingress => "ingress",
            Layer::DefaultDeny => "default-deny",
        };
        format!("{:02}-{name}", self.number())
    }
}

/// How much of an object ztp owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ownership {
    /// ztp creates, updates and deletes the object.
    Owned,
    /// ztp only sets some labels on an object someone else owns (Namespaces,
    /// Services); it never creates or deletes it.
    LabelsOnly,
}

/// An object's fields but `apiVersion`, `kind` and `metadata`, kept as
/// compact JSON text. A policy is a tree of many small maps, which in
/// memory costs some twenty times its text; a large estate holds tens of
/// thousands of objects from emit until they are written, so each keeps
/// its text and is read back into a value one at a time when needed.
///
/// The text is only ever written by [`Body::new`], from a map: a map of
/// JSON values always serializes, and serde_json reads its own output back
/// to an equal map (integers, strings and shortest-round-trip floats), so
/// neither fallback below is reached. Equal bodies have equal text, as
/// the map's keys are sorted.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Body(Box<str>);

impl Body {
    pub fn new(fields: &Map<String, Value>) -> Body {
        Body(serde_json::to_string(fields).unwrap_or_default().into_boxed_str())
    }

    /// The fields as a map (a fresh one on every call: callers that need
    /// them more than once keep the result).
    pub fn fields(&self) -> Map<String, Value> {
        if self.0.is_empty() {
            return Map::new();
        }
        serde_json::from_str(&self.0).unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub layer: Layer,
    /// Order inside the layer (a waypoint before its policy, the policy
    /// before the binding, the binding before the narrowed L4 policy).
    pub step: u8,
    pub api_version: &'static str,
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Every top-level field but `apiVersion`, `kind` and `metadata`.
    pub body: Body,
    pub ownership: Ownership,
}

impl Manifest {
    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }

    /// `Kind.group`, or `Kind` for the core group (ApplySet's spelling).
    pub fn group_kind(&self) -> String {
        match self.group() {
            "" => self.kind.to_string(),
            g => format!("{}.{g}", self.kind),
        }
    }

    /// `Kind/namespace/name` or `Kind/name`, for messages.
    pub fn id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }

    /// The sync wave: the layer's number plus the step.
    pub fn wave(&self) -> u8 {
        self.layer.number().saturating_add(self.step)
    }

    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        for (k, v) in self.header() {
            obj.insert(k.into(), v);
        }
        for (k, v) in self.body.fields() {
            obj.insert(k, v);
        }
        Value::Object(obj)
    }

    /// `apiVersion`, `kind` and `metadata`: the fields not in `body`.
    fn header(&self) -> [(&'static str, Value); 3] {
        let mut meta = Map::new();
        meta.insert("name".into(), json!(self.name));
        if let Some(ns) = &self.namespace {
            meta.insert("namespace".into(), json!(ns));
        }
        if !self.labels.is_empty() {
            meta.insert("labels".into(), json!(self.labels));
        }
        if !self.annotations.is_empty() {
            meta.insert("annotations".into(), json!(self.annotations));
        }
        [("apiVersion", json!(self.api_version)), ("kind", json!(self.kind)), ("metadata", Value::Object(meta))]
    }

    /// The object as one YAML document (without `---`), the text of
    /// `serde_yaml::to_string(&self.to_value())`, written without building
    /// the value.
    pub fn to_yaml(&self) -> String {
        let header = self.header();
        let body = self.body.fields();
        let mut entries: Vec<(&str, &Value)> = header
            .iter()
            .filter(|(k, _)| !body.contains_key(*k))
            .map(|(k, v)| (*k, v))
            .chain(body.iter().map(|(k, v)| (k.as_str(), v)))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        crate::yaml::entries_to_string(&entries).unwrap_or_else(|| crate::yaml::to_string(&self.to_value()))
    }
}

/// Puts manifests in apply order.
pub fn sort(ms: &mut [Manifest]) {
    ms.sort_by(|a, b| {
        (a.layer, a.step, a.kind, &a.namespace, &a.name).cmp(&(b.layer, b.step, b.kind, &b.namespace, &b.name))
    });
}

/// A multi-document YAML stream, rendered in parts of a few hundred
/// objects on every core and put together in order: the same text as one
/// loop.
pub fn to_yaml<M: std::borrow::Borrow<Manifest> + Sync>(ms: &[M]) -> String {
    const PART: usize = 256;
    let yaml = |part: &&[M]| {
        let mut text = String::new();
        for m in *part {
            text.push_str("---\n");
            text.push_str(&m.borrow().to_yaml());
        }
        text
    };
    let parts: Vec<&[M]> = ms.chunks(PART).collect();
    let mut out = String::new();
    for (text, part) in crate::par::map(&parts, yaml).into_iter().zip(&parts) {
        out.push_str(&text.unwrap_or_else(|| yaml(part)));
    }
    out
}

/// A `v1/List` of the objects, as `kubectl` reads and writes them.
pub fn to_json<M: std::borrow::Borrow<Manifest>>(ms: &[M]) -> String {
    let list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": ms.iter().map(|m| m.borrow().to_value()).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&list).unwrap_or_default();
    s.push('\n');
    s
}
