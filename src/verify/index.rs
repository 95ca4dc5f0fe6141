//! The model's indexes: every object it reads, bucketed once when the
//! model is built, so that a question reads only the objects that can
//! apply to it — a namespace's policies, the policies whose selector asks
//! for one of the endpoint's labels, a Service or Gateway by name — and
//! never scans the estate. Lookups return objects in input order, so the
//! model's answers (which policy is named first) do not depend on the
//! index.

use serde_json::Value;
use std::collections::BTreeMap;

/// Positions of policies, keyed by one `key: value` pair their selector
/// requires; policies with no such pair are asked about every endpoint.
#[derive(Default)]
pub(crate) struct SelectorIndex {
    keyed: BTreeMap<String, BTreeMap<String, Vec<usize>>>,
    open: Vec<usize>,
}

impl SelectorIndex {
    /// Adds the policy at `position`, which selects only endpoints with
    /// `key` (if any).
    pub(crate) fn insert(&mut self, position: usize, key: Option<(String, String)>) {
        match key {
            Some((k, v)) => self.keyed.entry(k).or_default().entry(v).or_default().push(position),
            None => self.open.push(position),
        }
    }

    /// The positions of the policies that may select an endpoint with
    /// `labels`, added to `out`.
    pub(crate) fn candidates(&self, labels: &BTreeMap<String, String>, out: &mut Vec<usize>) {
        out.extend_from_slice(&self.open);
        for (k, v) in labels {
            if let Some(ps) = self.keyed.get(k.as_str()).and_then(|m| m.get(v.as_str())) {
                out.extend_from_slice(ps);
            }
        }
    }
}

/// Objects of one family, in input order, with a selector index per
/// namespace (and one for cluster-wide objects).
#[derive(Default)]
pub(crate) struct Bucket<'a> {
    pub(crate) items: Vec<&'a Value>,
    by_namespace: BTreeMap<String, SelectorIndex>,
    cluster: SelectorIndex,
}

impl<'a> Bucket<'a> {
    /// Adds `v`, selecting by `key` within its namespace (`None`: a
    /// cluster-wide object).
    pub(crate) fn push(&mut self, v: &'a Value, namespace: Option<&str>, key: Option<(String, String)>) {
        let position = self.items.len();
        self.items.push(v);
        match namespace {
            Some(ns) => self.by_namespace.entry(ns.to_string()).or_default().insert(position, key),
            None => self.cluster.insert(position, key),
        }
    }

    /// The objects of `namespaces` (and, with `cluster`, the cluster-wide
    /// ones) that may select an endpoint with `labels`, in input order.
    pub(crate) fn select(
        &self,
        namespaces: &[&str],
        cluster: bool,
        labels: &BTreeMap<String, String>,
    ) -> Vec<&'a Value> {
        let mut positions = Vec::new();
        for ns in namespaces {
            if let Some(ix) = self.by_namespace.get(*ns) {
                ix.candidates(labels, &mut positions);
            }
        }
        if cluster {
            self.cluster.candidates(labels, &mut positions);
        }
        positions.sort_unstable();
        positions.dedup();
        positions.into_iter().filter_map(|p| self.items.get(p).copied()).collect()
    }
}

/// The `key: value` pair of a `matchLabels` map to index a selector by:
/// the first that is not `skip` (a key every candidate has anyway), else
/// the first.
pub(crate) fn index_key(match_labels: &Value, normalize: fn(&str) -> &str, skip: &str) -> Option<(String, String)> {
    let pairs: Vec<(&str, &str)> =
        match_labels.as_object()?.iter().filter_map(|(k, v)| Some((normalize(k), v.as_str()?))).collect();
    pairs.iter().find(|(k, _)| *k != skip).or_else(|| pairs.first()).map(|(k, v)| (k.to_string(), v.to_string()))
}
