//! Hover: what a name stands for in the emitted policy, and what a flow
//! becomes.
//!
//! A workload shows its identity (the SPIFFE principal), selector and
//! ports; a gateway its identity and listeners; a port, listener,
//! namespace, waypoint or constant what it is. A flow shows, per concrete
//! hop, which layer (Cilium, ztunnel, waypoint) decides it and the object
//! that does, judged by the reachability model over the objects the program
//! emits — the same answer `ztp explain` gives. Everything is read from the
//! IR when the program lowers; names fall back to the checked program.

use crate::ast::{self, Stmt};
use crate::driver::Analysis;
use crate::hir::{self, Program};
use crate::ir::Ir;
use crate::resolve::index::Symbol;
use crate::source::{SourceId, Span};
use crate::verify::{Model, intent};

/// The hover text (Markdown) at `offset`, and the span it is about.
pub fn hover(
    a: &Analysis,
    model: &mut Option<Vec<serde_json::Value>>,
    id: SourceId,
    offset: usize,
) -> Option<(String, Span)> {
    let program = a.program()?;
    if let Some((span, symbol)) = a.index.as_ref().and_then(|ix| ix.at(id, offset)) {
        return Some((describe(a, program, symbol)?, span));
    }
    let flow = flow_at(a, id, offset)?;
    Some((flow_text(a, model, flow), flow.span))
}

fn describe(a: &Analysis, p: &Program, symbol: Symbol) -> Option<String> {
    let ir = a.ir();
    let td = &p.mesh.trust_domain.value;
    Some(match symbol {
        Symbol::Workload(id) => {
            let w = p.workload(id)?;
            let ns = &p.namespace(id.ns)?.name.value;
            let lowered = ir.and_then(|ir| ir.workloads.iter().find(|x| &x.namespace == ns && x.name == w.name.value));
            let principal =
                lowered.map_or_else(|| format!("{td}/ns/{ns}/sa/{}", w.service_account.value), |x| x.principal.clone());
            let selector: Vec<String> =
                w.selector.iter().map(|(k, v)| format!("{} = \"{}\"", k.value, v.value)).collect();
            let ports: Vec<String> = w
                .ports
                .iter()
                .map(|x| format!("`{}` {}/{}", x.name.value, x.number.value, x.protocol.value.as_str()))
                .collect();
            let mut text = format!(
                "**workload** `{ns}/{}`\n\n- identity: `spiffe://{principal}`\n- selector: `{}`\n- ports: {}\n- service: `{}`",
                w.name.value,
                selector.join(", "),
                if ports.is_empty() { "none".to_string() } else { ports.join(", ") },
                w.service.value
            );
            if let Some(wp) = lowered.and_then(|x| x.waypoint).and_then(|i| ir?.waypoint(i)) {
                text.push_str(&format!("\n- waypoint: `{}/{}` (L7 rules)", wp.namespace, wp.name));
            }
            text
        }
        Symbol::Gateway(id) => {
            let g = p.gateway(id)?;
            let ns = &p.namespace(id.ns)?.name.value;
            let lowered = ir.and_then(|ir| ir.gateways.iter().find(|x| &x.namespace == ns && x.name == g.name.value));
            let principal =
                lowered.map_or_else(|| format!("{td}/ns/{ns}/sa/{}-istio", g.name.value), |x| x.principal.clone());
            let listeners: Vec<String> = g
                .listeners
                .iter()
                .map(|l| {
                    let proto = match l.protocol.value {
                        hir::ListenerProtocol::Http => "http",
                        hir::ListenerProtocol::Https => "https",
                    };
                    format!("`{}` {}/{proto}", l.name.value, l.port.value)
                })
                .collect();
            format!(
                "**gateway** `{ns}/{}` (Gateway API, class `istio`)\n\n- identity: `spiffe://{principal}`\n- listeners: {}\n- routes: {}",
                g.name.value,
                listeners.join(", "),
                g.routes.len()
            )
        }
        Symbol::Port(id, i) => {
            let w = p.workload(id)?;
            let port = w.ports.get(i)?;
            format!(
                "**port** `{}` of `{}`: {}/{}",
                port.name.value,
                p.workload_path(id),
                port.number.value,
                port.protocol.value.as_str()
            )
        }
        Symbol::Listener(id, i) => {
            let l = p.gateway(id)?.listeners.get(i)?;
            format!("**listener** `{}` of gateway `{}`: port {}", l.name.value, p.gateway_path(id), l.port.value)
        }
        Symbol::Namespace(id) => {
            let n = p.namespace(id)?;
            format!(
                "**namespace** `{}` (ambient mode)\n\n- workloads: {}\n- gateways: {}\n- waypoints: {}",
                n.name.value,
                n.workloads.len(),
                n.gateways.len(),
                n.waypoints.len()
            )
        }
        Symbol::Waypoint(ns, i) => {
            let n = p.namespace(ns)?;
            let w = n.waypoints.get(i)?;
            let for_ = match w.for_.value {
                hir::WaypointFor::Service => "service",
                hir::WaypointFor::Workload => "workload",
                hir::WaypointFor::All => "all",
            };
            format!("**waypoint** `{}/{}` (for {for_} traffic)", n.name.value, w.name.value)
        }
        Symbol::Constant(i) => {
            let (name, span) = a.index.as_ref()?.constants.get(i)?;
            let value = let_value(a, *span)
                .map(|v| a.checked.sources.text(v.source).get(v.lo..v.hi).unwrap_or("").to_string())
                .unwrap_or_default();
            format!("**let** `{name} = {value}`")
        }
    })
}

/// The span of the value of the `let` whose name is at `name`.
fn let_value(a: &Analysis, name: Span) -> Option<Span> {
    a.files.iter().filter_map(|f| f.ast.as_ref()).flat_map(|f| &f.stmts).find_map(|s| match s {
        Stmt::Let(l) if l.name.span == name => Some(l.value.span()),
        _ => None,
    })
}

/// The flow (or `expect`) statement around `offset`.
fn flow_at(a: &Analysis, id: SourceId, offset: usize) -> Option<&ast::Flow> {
    let file = a.files.iter().find(|f| f.id == id)?.ast.as_ref()?;
    let inside = |s: Span| s.lo <= offset && offset <= s.hi;
    let mut stmts: Vec<&Stmt> = file.stmts.iter().collect();
    while let Some(s) = stmts.pop() {
        match s {
            Stmt::Flow(f) if inside(f.span) => return Some(f),
            Stmt::Block(b) if inside(b.span) => stmts.extend(&b.body.stmts),
            _ => {}
        }
    }
    None
}

fn flow_text(a: &Analysis, model: &mut Option<Vec<serde_json::Value>>, f: &ast::Flow) -> String {
    let head = format!("**{}**", f.kind.keyword());
    let Some(ir) = a.ir() else {
        return format!(
            "{head}\n\nThe program has errors: once it checks, this shows the layers that enforce the flow."
        );
    };
    let lowered: Vec<&crate::ir::Flow> = ir.flows.iter().filter(|x| x.span == f.span).collect();
    let expects: Vec<&crate::ir::Expect> = ir.expects.iter().filter(|x| x.span == f.span).collect();
    if lowered.is_empty() && expects.is_empty() {
        return format!("{head}\n\nThis flow emits nothing.");
    }
    let objects = model.get_or_insert_with(|| build_objects(a, ir));
    let m = &Model::steady(objects.iter(), &ir.mesh.root_namespace);
    let mut text = head;
    for x in &lowered {
        if let Some(via) = x.via.and_then(|v| ir.waypoint(v)) {
            text.push_str(&format!("\n\nL7 rules: enforced by waypoint `{}/{}`", via.namespace, via.name));
        }
        text.push_str(&judged(ir, m, &x.src, &x.dst, x.http.as_ref()));
    }
    for x in &expects {
        match &x.http {
            // An expectation about requests: each of them.
            Some(h) => {
                for r in crate::verify::expect::requests(h) {
                    text.push_str(&judged(ir, m, &x.src, &x.dst, Some(&r)));
                }
            }
            None => {
                let http = crate::verify::report::default_http(ir, &x.src, &x.dst);
                text.push_str(&judged(ir, m, &x.src, &x.dst, http.as_ref()));
            }
        }
    }
    text
}

fn build_objects(a: &Analysis, ir: &Ir) -> Vec<serde_json::Value> {
    match &a.checked.manifests {
        Some(ms) => ms.iter().map(crate::manifest::Manifest::to_value).collect(),
        None => crate::backend::emit(ir).iter().map(crate::manifest::Manifest::to_value).collect(),
    }
}

/// Each concrete flow with its verdict, the deciding layers and objects.
fn judged(ir: &Ir, m: &Model, src: &crate::ir::Peer, dst: &crate::ir::Dest, http: Option<&crate::ir::Http>) -> String {
    let mut text = String::new();
    for (name, flow) in intent::flows(ir, src, dst, http) {
        let (verdict, steps) = m.explain(&flow);
        let word = if verdict.allowed() { "allowed" } else { "denied" };
        let request = match (&flow.method, &flow.path) {
            (Some(method), Some(path)) => format!(" {method} {path}"),
            _ => String::new(),
        };
        text.push_str(&format!("\n\n`{name}{request}`: {word}"));
        let mut hop = String::new();
        for s in &steps {
            if s.hop != hop {
                hop = s.hop.clone();
                text.push_str(&format!("\n- hop `{hop}`"));
            }
            let decision = if s.allowed { "allows" } else { "DENIES" };
            let object = s.object.as_deref().map_or_else(|| "no object".to_string(), |o| format!("`{o}`"));
            text.push_str(&format!("\n  - {}: {decision} ({object})", s.layer));
        }
        let mut objects: Vec<&str> = steps.iter().filter_map(|s| s.object.as_deref()).collect();
        objects.sort_unstable();
        objects.dedup();
        if !objects.is_empty() {
            let list: Vec<String> = objects.iter().map(|o| format!("`{o}`")).collect();
            text.push_str(&format!("\n\nobjects: {}", list.join(", ")));
        }
    }
    text
}
