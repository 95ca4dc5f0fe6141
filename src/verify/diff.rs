//! `ztp diff OLD NEW`: the reachability change between two versions of a
//! program, which a text diff of YAML cannot show. Both versions are built
//! and judged by the model in their steady state; the flows asked about are
//! every flow and expectation of either version, as concrete requests. A
//! flow whose verdict differs is reported with the objects responsible: the
//! one that now denies it, or the ones that now admit it.

use super::{Flow, Model, Step, Verdict, intent};
use crate::ir::Ir;
use crate::manifest::Manifest;
use serde_json::Value;
use std::collections::BTreeMap;

/// One version: its IR and what it emits.
pub struct Version<'a> {
    pub ir: &'a Ir,
    pub manifests: &'a [Manifest],
}

/// A flow whose verdict changed.
#[derive(Clone, Debug)]
pub struct Change {
    pub flow: String,
    pub method: Option<String>,
    pub path: Option<String>,
    /// The request's headers (names lower-case), when it names any.
    pub headers: BTreeMap<String, String>,
    pub now_allowed: bool,
    /// The new verdict's deciding steps (the denying one, or every
    /// admitting one that names an object), each with its `.ztp` line.
    pub because: Vec<(Step, Option<String>)>,
}

fn questions(ir: &Ir) -> Vec<(String, Flow)> {
    let mut out = Vec::new();
    for f in &ir.flows {
        out.extend(intent::flows(ir, &f.src, &f.dst, f.http.as_ref()));
    }
    for e in &ir.expects {
        match &e.http {
            Some(h) => {
                for r in super::expect::requests(h) {
                    out.extend(intent::flows(ir, &e.src, &e.dst, Some(&r)));
                }
            }
            None => out.extend(intent::flows(ir, &e.src, &e.dst, None)),
        }
    }
    out
}

/// The flows whose verdict differs between `old` and `new`, sorted by name.
pub fn run(old: &Version<'_>, new: &Version<'_>) -> Vec<Change> {
    let values = |v: &Version<'_>| -> Vec<Value> { v.manifests.iter().map(Manifest::to_value).collect() };
    let (old_objects, new_objects) = (values(old), values(new));
    let old_model = Model::steady(&old_objects, &old.ir.mesh.root_namespace);
    let new_model = Model::steady(&new_objects, &new.ir.mesh.root_namespace);
    // Requests that differ only in their headers are different questions.
    type Asked = (String, Option<String>, Option<String>, BTreeMap<String, String>);
    let mut asked: BTreeMap<Asked, Flow> = BTreeMap::new();
    for (name, flow) in questions(old.ir).into_iter().chain(questions(new.ir)) {
        asked.entry((name, flow.method.clone(), flow.path.clone(), flow.headers.clone())).or_insert(flow);
    }
    let mut out = Vec::new();
    for ((name, method, path, headers), flow) in asked {
        let before = old_model.check(&flow).allowed();
        let (verdict, steps) = new_model.explain(&flow);
        let after = verdict.allowed();
        if before == after {
            continue;
        }
        let deciding: Vec<Step> = match verdict {
            Verdict::Allowed => steps.into_iter().filter(|s| s.object.is_some()).collect(),
            Verdict::Denied { .. } => steps.into_iter().filter(|s| !s.allowed).collect(),
        };
        let because = deciding
            .into_iter()
            .map(|s| {
                let source = s.object.as_deref().and_then(|o| new_model.source_of(o)).map(str::to_string);
                (s, source)
            })
            .collect();
        out.push(Change { flow: name, method, path, headers, now_allowed: after, because });
    }
    out
}
