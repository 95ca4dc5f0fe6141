//! Backends: pure functions from the IR to manifests, one module per target.
//!
//! Each module emits the objects of its system — Cilium, Istio, Gateway API,
//! Kubernetes NetworkPolicy, and the labels ztp sets on Namespaces and
//! Services — and never sees the AST. [`emit`] runs them all and sorts the
//! result into apply order. The naming scheme and what each object enforces
//! are documented in docs/layers.md.

pub mod cilium;
pub mod gateway;
pub mod istio;
pub mod k8s;
pub mod netpol;

use crate::ir::{Ir, Origin};
use crate::manifest::{self, Layer, Manifest, Ownership};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Label on every object ztp owns.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label naming the program's stack on every object ztp owns.
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// Annotation pointing to the `.ztp` line an object came from.
pub const SOURCE: &str = "ztp.dev/source";

/// How many workloads' Cilium policies [`emit`] builds as one part.
const WORKLOADS_PER_PART: usize = 1000;

/// A layer's objects, from the IR and its flow index.
type Layered = fn(&Ir, &crate::ir::FlowIndex<'_>) -> Vec<Manifest>;

/// Every layer's objects but Cilium's per-workload policies, in the order
/// [`emit`] puts them: namespaces, Cilium's baseline, then the rest
/// (starting with Cilium's gateway, waypoint and namespace policies).
const LAYERS: [Layered; 11] = [
    |ir, _| k8s::namespaces(ir),
    |ir, _| cilium::baseline(ir),
    cilium::proxy_policies,
    |ir, _| istio::peer_authentication(ir),
    istio::l4_policies_of,
    |ir, _| gateway::waypoints(ir),
    |ir, _| istio::l7_policies(ir),
    |ir, _| k8s::waypoint_bindings(ir),
    |ir, _| gateway::ingress(ir),
    |ir, _| cilium::default_deny(ir),
    |ir, _| netpol::default_deny(ir),
];

/// How many of [`LAYERS`] come before Cilium's per-workload policies.
const LAYERS_BEFORE_WORKLOADS: usize = 2;

/// One part of the emitted objects.
#[derive(Clone)]
enum Part {
    /// One of [`LAYERS`].
    Layer(usize),
    /// Cilium's policies of these workloads.
    Workloads(std::ops::Range<usize>),
}

/// Every manifest of a program, in apply order. A large program's
/// objects are built in parts on every core (Cilium's per-workload
/// policies are most of the work) and put together in the same order as
/// one pass would, then sorted. The other layers are handed out first:
/// each is one part, and a large one started last would leave the other
/// cores idle at the end.
pub fn emit(ir: &Ir) -> Vec<Manifest> {
    let ix = ir.flow_index();
    let n = ir.workloads.len();
    let mut parts: Vec<Part> = (0..LAYERS.len()).map(Part::Layer).collect();
    parts.extend(
        (0..n.div_ceil(WORKLOADS_PER_PART))
            .map(|i| Part::Workloads(i * WORKLOADS_PER_PART..((i + 1) * WORKLOADS_PER_PART).min(n))),
    );
    let build = |part: &Part| match part {
        Part::Layer(i) => LAYERS.get(*i).map(|layer| layer(ir, &ix)).unwrap_or_default(),
        Part::Workloads(range) => cilium::workload_policies_of(ir, &ix, range.clone()),
    };
    let built: Vec<Vec<Manifest>> = if n > WORKLOADS_PER_PART {
        crate::par::map(&parts, build).into_iter().zip(&parts).map(|(b, p)| b.unwrap_or_else(|| build(p))).collect()
    } else {
        parts.iter().map(build).collect()
    };
    let mut layers = Vec::with_capacity(LAYERS.len());
    let mut workloads = Vec::new();
    for (part, objects) in parts.iter().zip(built) {
        match part {
            Part::Layer(_) => layers.push(objects),
            Part::Workloads(_) => workloads.extend(objects),
        }
    }
    let mut out = Vec::with_capacity(workloads.len() + layers.iter().map(Vec::len).sum::<usize>());
    let mut layers = layers.into_iter();
    // Namespaces and Cilium's baseline, then Cilium's policies, then the rest.
    out.extend(layers.by_ref().take(LAYERS_BEFORE_WORKLOADS).flatten());
    out.extend(workloads);
    out.extend(layers.flatten());
    manifest::sort(&mut out);
    out
}

/// The identity of an object ztp owns.
pub(crate) struct Meta<'a> {
    pub layer: Layer,
    pub step: u8,
    pub api_version: &'static str,
    pub kind: &'static str,
    pub namespace: Option<&'a str>,
    pub name: String,
    pub origin: &'a Origin,
}

/// An object ztp owns: labelled as ztp's and as part of the stack.
pub(crate) fn owned(ir: &Ir, m: Meta<'_>, labels: BTreeMap<String, String>, body: Map<String, Value>) -> Manifest {
    let mut labels = labels;
    labels.insert(MANAGED_BY.into(), "ztp".into());
    labels.insert(PART_OF.into(), ir.stack.clone());
    manifest(m, labels, body, Ownership::Owned)
}

/// Labels ztp sets on an object someone else owns. It carries no ownership
/// labels: another tool's `managed-by` stays as it is, and an ApplySet prune
/// never selects it. GitOps engines that apply the build are told never to
/// prune or delete it either.
pub(crate) fn labels_only(m: Meta<'_>, labels: BTreeMap<String, String>) -> Manifest {
    let mut out = manifest(m, labels, Map::new(), Ownership::LabelsOnly);
    out.annotations.insert("argocd.argoproj.io/sync-options".into(), "Prune=false,Delete=false".into());
    out.annotations.insert("kustomize.toolkit.fluxcd.io/prune".into(), "disabled".into());
    out
}

/// Kubernetes names are at most 253 characters. A longer generated name
/// (a long route path, many `except` workloads) keeps its start and gets a
/// hash of the whole, so it stays unique and deterministic.
pub(crate) fn bounded_name(name: String) -> String {
    const MAX: usize = 253;
    if name.len() <= MAX {
        return name;
    }
    // FNV-1a: small, stable across releases and platforms.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let head: String = name.chars().take(MAX - 9).collect();
    format!("{}-{hash:08x}", head.trim_end_matches(['-', '.']))
}

fn manifest(m: Meta<'_>, labels: BTreeMap<String, String>, body: Map<String, Value>, ownership: Ownership) -> Manifest {
    let m = Meta { name: bounded_name(m.name), ..m };
    Manifest {
        layer: m.layer,
        step: m.step,
        api_version: m.api_version,
        kind: m.kind,
        namespace: m.namespace.map(str::to_string),
        name: m.name,
        labels,
        annotations: BTreeMap::from([(SOURCE.to_string(), m.origin.0.clone())]),
        body: crate::manifest::Body::new(&body),
        ownership,
    }
}

/// A JSON object from `(key, value)` pairs, leaving out `None`s.
pub(crate) fn obj<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    }
    Value::Object(m)
}

/// `{ "spec": spec }`.
pub(crate) fn spec(spec: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("spec".into(), spec);
    m
}

/// Lowers a small program for the backends' unit tests.
#[cfg(test)]
pub(crate) fn ir_of(text: &str) -> Ir {
    let fs = crate::resolve::load::MemoryFs::default();
    let checked = crate::driver::check_text(&fs, "t.ztp", text.to_string(), std::path::Path::new("")).unwrap();
    let errors: Vec<String> = checked.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.message.clone()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut ir = checked.ir.unwrap();
    ir.stack = "t".into();
    ir
}

/// One object's JSON by kind and name.
#[cfg(test)]
pub(crate) fn find(ms: &[Manifest], kind: &str, name: &str) -> Value {
    ms.iter().find(|m| m.kind == kind && m.name == name).map(Manifest::to_value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::bounded_name;

    #[test]
    fn long_names_are_cut_with_a_hash() {
        assert_eq!(bounded_name("short".into()), "short");
        let long = "a-".repeat(200);
        let cut = bounded_name(long.clone());
        assert!(cut.len() <= 253, "{}", cut.len());
        assert_eq!(cut, bounded_name(long));
        assert_ne!(cut, bounded_name(format!("{}b", "a-".repeat(200))));
    }
}
