//! `expect allow|deny` checked against what the program emits: each
//! expectation's concrete flows are judged by the model over the built
//! objects in their steady state (every labelled Service bound, every
//! waypoint ready), so a backend bug shows up as a failed expectation.
//! "A can reach B" means some request gets through: the bare connection,
//! or the first method and path of any `http` block toward B; a `deny`
//! holds only if every one of them is denied. An `expect` with its own
//! `http` block is about exactly the requests it names, each method with
//! each path: all must get through, or none.

use super::{Model, Verdict, intent};
use crate::diag::{Diagnostic, codes};
use crate::hir::Verdict as Expected;
use crate::ir::{Dest, Expect, Http, Ir};
use crate::manifest::Manifest;
use crate::source::Span;
use crate::value::HttpMethod;
use serde_json::Value;

/// The outcome of one expectation.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The `expect` line.
    pub span: Span,
    pub verdict: Expected,
    /// `None` when it holds; else the flow and what the model said.
    pub failure: Option<(String, Verdict)>,
}

/// Whether two destinations are the same workload (on a shared port),
/// gateway or external target.
pub fn same_dest(a: &Dest, b: &Dest) -> bool {
    match (a, b) {
        (Dest::Workload { workload: x, ports: p }, Dest::Workload { workload: y, ports: q }) => {
            x == y && p.iter().any(|a| q.iter().any(|b| a.number == b.number))
        }
        (Dest::Gateway { gateway: x, .. }, Dest::Gateway { gateway: y, .. }) => x == y,
        _ => a == b,
    }
}

/// Judges every expectation of `ir` over `manifests`.
pub fn run(ir: &Ir, manifests: &[Manifest]) -> Vec<Outcome> {
    if ir.expects.is_empty() {
        return Vec::new();
    }
    let objects: Vec<Value> = manifests.iter().map(Manifest::to_value).collect();
    let model = Model::steady(&objects, &ir.mesh.root_namespace);
    ir.expects
        .iter()
        .map(|e| {
            let failure = match &e.http {
                Some(h) => every_request(ir, &model, e, h),
                None => some_request(ir, &model, e),
            };
            Outcome { span: e.span, verdict: e.verdict, failure }
        })
        .collect()
}

/// "Can A reach B" asks whether any request gets through: the bare
/// connection, or a request some `http` block toward B allows.
fn some_request(ir: &Ir, model: &Model<'_>, e: &Expect) -> Option<(String, Verdict)> {
    let mut requests = vec![None];
    requests.extend(ir.flows.iter().filter(|f| same_dest(&f.dst, &e.dst)).filter_map(|f| f.http.as_ref()).map(Some));
    let mut by_flow: Vec<(String, Vec<Verdict>)> = Vec::new();
    for http in &requests {
        for (i, (name, flow)) in intent::flows(ir, &e.src, &e.dst, *http).into_iter().enumerate() {
            let v = model.check(&flow);
            match by_flow.get_mut(i) {
                Some((_, vs)) => vs.push(v),
                None => by_flow.push((name, vec![v])),
            }
        }
    }
    by_flow.into_iter().find_map(|(name, verdicts)| {
        let through = verdicts.iter().find(|v| v.allowed());
        match (e.verdict, through) {
            (Expected::Allow, None) => verdicts.into_iter().next().map(|v| (name, v)),
            (Expected::Deny, Some(v)) => Some((name, v.clone())),
            _ => None,
        }
    })
}

/// An expectation with an `http` block is about each of its requests:
/// every one must get through (`allow`), or none (`deny`).
fn every_request(ir: &Ir, model: &Model<'_>, e: &Expect, h: &Http) -> Option<(String, Verdict)> {
    for r in requests(h) {
        let request = format!(
            " {} {}",
            r.methods.first().map_or("GET", |m| m.as_str()),
            r.paths.first().map_or("/", String::as_str)
        );
        for (name, flow) in intent::flows(ir, &e.src, &e.dst, Some(&r)) {
            let v = model.check(&flow);
            if v.allowed() != (e.verdict == Expected::Allow) {
                return Some((format!("{name}{request}"), v));
            }
        }
    }
    None
}

/// The requests an expectation's `http` block names, one per method and
/// path (GET and `/` where it names none), each with all its headers.
pub fn requests(h: &Http) -> Vec<Http> {
    let methods = if h.methods.is_empty() { vec![HttpMethod::Get] } else { h.methods.clone() };
    let paths = if h.paths.is_empty() { vec!["/".to_string()] } else { h.paths.clone() };
    methods
        .iter()
        .flat_map(|m| {
            paths.iter().map(|p| Http { methods: vec![*m], paths: vec![p.clone()], headers: h.headers.clone() })
        })
        .collect()
}

/// A failed expectation as a diagnostic at its `expect` line.
pub fn diagnostic(o: &Outcome) -> Option<Diagnostic> {
    let (flow, verdict) = o.failure.as_ref()?;
    Some(match verdict {
        Verdict::Denied { layer, object, why } => Diagnostic::new(
            codes::EXPECTATION_FAILED,
            format!("expected `allow`, but {flow} is denied by {layer}"),
            o.span,
            format!("{object} denies it"),
        )
        .with_note(format!("{layer}: {why}"))
        .with_help("add the flow this expectation describes, or change the expectation"),
        Verdict::Allowed => Diagnostic::new(
            codes::EXPECTATION_FAILED,
            format!("expected `deny`, but {flow} is allowed by every layer"),
            o.span,
            "this flow gets through",
        )
        .with_help("remove the `allow` that admits it (or narrow it), or change the expectation"),
    })
}
