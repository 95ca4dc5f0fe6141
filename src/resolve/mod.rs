//! Names and structure: the ASTs of a loaded program → the HIR.
//!
//! This file holds the entry point, [`resolve`], the schema shapes of each
//! block, and the naming helpers the stages share. The stages, in order:
//! [`load`] (files, imports, stdlib, cycles) and [`schema`] (which
//! attributes and blocks go where) come first; `options` merges `mesh` and
//! `cluster`; `declare` declares namespaces (blocks of one name merge, so
//! several files may add to one namespace), workloads, gateways, waypoints,
//! ports and listeners; then `endpoints` and `flows` resolve flows, routes
//! and `expect`s against them, with did-you-mean for unknown names. Values
//! are parsed with the [`crate::value`] parsers as they are read.
//! Everything that could be built is returned beside the diagnostics.

mod declare;
mod endpoints;
mod flows;
pub mod index;
pub mod load;
mod options;
pub mod schema;
pub mod stdlib;

use crate::ast::{self, Block, FlowKind, Stmt, Target, Value};
use crate::diag::{Diagnostic, codes, did_you_mean};
use crate::hir::*;
use crate::source::Span;
use crate::value;
use load::Loaded;
use schema::{Shape, Values, split};
use std::cell::RefCell;
use std::collections::BTreeMap;

const TOP: Shape =
    Shape { what: "the top level", attrs: &[], blocks: &["mesh", "cluster", "namespace"], flows: true, routes: false };
const MESH: Shape = Shape {
    what: "mesh",
    attrs: &["trust_domain", "mtls", "root_namespace"],
    blocks: &[],
    flows: false,
    routes: false,
};
const CLUSTER: Shape = Shape {
    what: "cluster",
    attrs: &[
        "stack",
        "cilium_version",
        "hbone",
        "system_namespaces",
        "allow_dns",
        "allow_ambient_probes",
        "default_deny",
        "deny_egress",
    ],
    blocks: &[],
    flows: false,
    routes: false,
};
const NAMESPACE: Shape =
    Shape { what: "namespace", attrs: &[], blocks: &["workload", "gateway", "waypoint"], flows: true, routes: false };
const WORKLOAD: Shape = Shape {
    what: "workload",
    attrs: &["service_account", "service", "uses_pod_ips", "uses_kube_api", "scrapes_waypoints", "waypoint"],
    blocks: &["selector", "port"],
    flows: false,
    routes: false,
};
const PORT: Shape = Shape { what: "port", attrs: &["number", "protocol"], blocks: &[], flows: false, routes: false };
const GATEWAY: Shape = Shape { what: "gateway", attrs: &[], blocks: &["listener"], flows: false, routes: true };
const LISTENER: Shape = Shape {
    what: "listener",
    attrs: &["port", "protocol", "hostname", "certificate"],
    blocks: &[],
    flows: false,
    routes: false,
};
const WAYPOINT: Shape = Shape { what: "waypoint", attrs: &["for"], blocks: &[], flows: false, routes: false };
const ROUTE: Shape =
    Shape { what: "route", attrs: &["listeners", "hostnames"], blocks: &[], flows: false, routes: false };
const FLOW: Shape = Shape { what: "flow", attrs: &[], blocks: &["http"], flows: false, routes: false };
const HTTP: Shape =
    Shape { what: "http", attrs: &["methods", "paths", "headers"], blocks: &[], flows: false, routes: false };

const PROTOCOLS: &[(&str, Protocol)] = &[
    ("tcp", Protocol::Tcp),
    ("udp", Protocol::Udp),
    ("http", Protocol::Http),
    ("grpc", Protocol::Grpc),
    ("tls", Protocol::Tls),
];
const LISTENER_PROTOCOLS: &[(&str, ListenerProtocol)] =
    &[("http", ListenerProtocol::Http), ("https", ListenerProtocol::Https)];
const MTLS_MODES: &[(&str, MtlsMode)] = &[("strict", MtlsMode::Strict), ("permissive", MtlsMode::Permissive)];
const HBONE_MODES: &[(&str, HboneMode)] = &[("per_flow", HboneMode::PerFlow), ("mesh_wide", HboneMode::MeshWide)];
const WAYPOINT_FOR: &[(&str, WaypointFor)] =
    &[("service", WaypointFor::Service), ("workload", WaypointFor::Workload), ("all", WaypointFor::All)];

/// What a block of `kind` may contain (`""` for the top level of a file),
/// for editors' completion.
pub fn shape_of(kind: &str) -> Option<&'static Shape> {
    Some(match kind {
        "" => &TOP,
        "mesh" => &MESH,
        "cluster" => &CLUSTER,
        "namespace" => &NAMESPACE,
        "workload" => &WORKLOAD,
        "port" => &PORT,
        "gateway" => &GATEWAY,
        "listener" => &LISTENER,
        "waypoint" => &WAYPOINT,
        "route" => &ROUTE,
        "flow" => &FLOW,
        "http" => &HTTP,
        _ => return None,
    })
}

/// The words an attribute of a block takes (`protocol` of a `port`), for
/// editors' completion.
pub fn words_of(kind: &str, attr: &str) -> Vec<&'static str> {
    fn names<T>(choices: &'static [(&'static str, T)]) -> Vec<&'static str> {
        choices.iter().map(|(n, _)| *n).collect()
    }
    match (kind, attr) {
        ("port", "protocol") => names(PROTOCOLS),
        ("listener", "protocol") => names(LISTENER_PROTOCOLS),
        ("mesh", "mtls") => names(MTLS_MODES),
        ("cluster", "hbone") => names(HBONE_MODES),
        ("waypoint", "for") => names(WAYPOINT_FOR),
        ("http", "methods") => names(value::HTTP_METHODS),
        (_, "uses_pod_ips" | "uses_kube_api" | "scrapes_waypoints" | "allow_dns" | "allow_ambient_probes")
        | (_, "default_deny") => vec!["true", "false"],
        _ => Vec::new(),
    }
}

/// Names that cannot name a workload or gateway.
const RESERVED: &[&str] = &["world"];

/// Resolves a loaded program. Files that did not parse are skipped (their
/// syntax errors are already in `loaded.diagnostics`).
pub fn resolve(loaded: &Loaded) -> (Program, Vec<Diagnostic>) {
    let (program, diags, _) = resolve_indexed(loaded);
    (program, diags)
}

/// [`resolve`], with the [`index::Index`] of where each name is declared
/// and used.
pub fn resolve_indexed(loaded: &Loaded) -> (Program, Vec<Diagnostic>, index::Index) {
    let files: Vec<(&ast::File, bool)> =
        loaded.files.iter().filter_map(|f| f.ast.as_ref().map(|a| (a, f.is_stdlib))).collect();
    let mut diags = Vec::new();

    // Constants first: they are program-wide.
    let mut consts: BTreeMap<String, &ast::Let> = BTreeMap::new();
    for (file, _) in &files {
        for s in &file.stmts {
            if let Stmt::Let(l) = s {
                if let Some(first) = consts.get(&l.name.text) {
                    diags.push(duplicate("constant", &l.name.text, l.name.span, first.name.span));
                } else {
                    consts.insert(l.name.text.clone(), l);
                }
            }
        }
    }
    let values = Values { consts: &consts, used: RefCell::new(Default::default()), uses: Default::default() };

    let mut r = Resolver {
        values: &values,
        diags,
        program: Program::default(),
        pending_flows: Vec::new(),
        pending_routes: Vec::new(),
        names: BTreeMap::new(),
        index: index::Index::default(),
    };

    // Top-level statements of every file, sorted by kind.
    let mut options: Vec<(&Block, bool)> = Vec::new();
    let mut namespaces: Vec<&Block> = Vec::new();
    for (file, is_stdlib) in &files {
        let stmts = file.stmts.iter().filter(|s| !matches!(s, Stmt::Import(_) | Stmt::Let(_)));
        let parts = split(stmts, &TOP, &mut r.diags);
        for b in parts.blocks {
            match b.kind.text.as_str() {
                "namespace" => namespaces.push(b),
                _ => options.push((b, *is_stdlib)),
            }
        }
        r.pending_flows.extend(parts.flows.into_iter().map(|f| (f, None)));
    }

    // Declarations first, then everything that refers to them.
    r.options(&options);
    r.declare_namespaces(&namespaces);
    for (f, scope) in std::mem::take(&mut r.pending_flows) {
        r.flow(f, scope);
    }
    for (route, gid) in std::mem::take(&mut r.pending_routes) {
        if let Some(resolved) = r.route(route, gid)
            && let Some(gw) = r.program.namespaces.get_mut(gid.ns.0).and_then(|n| n.gateways.get_mut(gid.index))
        {
            gw.routes.push(resolved);
        }
    }

    r.workload_waypoints();
    r.index_declarations();
    let constant_ids: BTreeMap<&str, usize> = consts.keys().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
    r.index.constants = consts.iter().map(|(k, l)| (k.clone(), l.name.span)).collect();
    for (i, l) in consts.values().enumerate() {
        r.index.declarations.push((l.name.span, index::Symbol::Constant(i)));
    }
    for (name, span) in values.uses.borrow().iter() {
        if let Some(&i) = constant_ids.get(name.as_str()) {
            r.index.uses.push((*span, index::Symbol::Constant(i)));
        }
    }
    r.index.finish();

    let used = values.used.borrow();
    for (name, l) in &consts {
        if !used.contains(name) {
            r.diags.push(
                Diagnostic::new(
                    codes::UNUSED_CONSTANT,
                    format!("constant `{name}` is never used"),
                    l.name.span,
                    "unused",
                )
                .with_help("remove it, or use it in an attribute"),
            );
        }
    }
    (r.program, r.diags, r.index)
}

/// Records a declared item, or only its name when the declaration had an
/// error (so later references to it raise no second error); a name
/// declared twice is reported against the first.
fn declare<T>(
    what: &str,
    declared: Result<T, Spanned<String>>,
    valid: &mut Vec<T>,
    invalid: &mut Vec<Spanned<String>>,
    name_of: impl Fn(&T) -> &Spanned<String>,
) -> Option<Diagnostic> {
    let name = match &declared {
        Ok(x) => name_of(x),
        Err(n) => n,
    };
    if let Some(first) = valid.iter().map(&name_of).chain(invalid.iter()).find(|x| x.value == name.value) {
        return match (name.span, first.span) {
            (Some(s), Some(f)) => Some(duplicate(what, &name.value, s, f)),
            _ => None,
        };
    }
    match declared {
        Ok(x) => valid.push(x),
        Err(n) => invalid.push(n),
    }
    None
}

fn duplicate(what: &str, name: &str, span: Span, first: Span) -> Diagnostic {
    Diagnostic::new(codes::DUPLICATE_NAME, format!("{what} `{name}` is declared twice"), span, "declared again here")
        .with_secondary(first, "first declared here")
        .with_help(format!("rename one of them; {what} names must be unique"))
}

fn reserved(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(codes::RESERVED_NAME, format!("`{name}` is a reserved word"), span, "reserved")
        .with_help(format!("`{name}` means traffic from outside the cluster; choose another name"))
}

struct Resolver<'a> {
    values: &'a Values<'a>,
    diags: Vec<Diagnostic>,
    program: Program,
    /// Flows (with the namespace they are written in) and routes, resolved
    /// once everything is declared.
    pending_flows: Vec<(&'a ast::Flow, Option<NamespaceId>)>,
    pending_routes: Vec<(&'a ast::Route, GatewayId)>,
    /// Workloads and gateways by namespace and name.
    names: BTreeMap<(NamespaceId, String), Named>,
    /// Where names are declared and used, for editors.
    index: index::Index,
}

/// A `mesh`/`cluster` attribute and whether it came from the stdlib.
type OptionAttr<'a> = (&'a ast::Attr, bool);

impl<'a> Resolver<'a> {
    fn used(&mut self, span: Span, symbol: index::Symbol) {
        self.index.uses.push((span, symbol));
    }

    /// Records the name of every declared item but namespaces (recorded per
    /// block as they are declared).
    fn index_declarations(&mut self) {
        use index::Symbol as S;
        let decl = &mut self.index.declarations;
        for (n, ns) in self.program.namespaces.iter().enumerate() {
            let nid = NamespaceId(n);
            for (i, w) in ns.workloads.iter().enumerate() {
                let id = WorkloadId { ns: nid, index: i };
                decl.extend(w.name.span.map(|s| (s, S::Workload(id))));
                for (p, port) in w.ports.iter().enumerate() {
                    decl.extend(port.name.span.map(|s| (s, S::Port(id, p))));
                }
            }
            for (i, g) in ns.gateways.iter().enumerate() {
                let id = GatewayId { ns: nid, index: i };
                decl.extend(g.name.span.map(|s| (s, S::Gateway(id))));
                for (l, listener) in g.listeners.iter().enumerate() {
                    decl.extend(listener.name.span.map(|s| (s, S::Listener(id, l))));
                }
            }
            for (i, w) in ns.waypoints.iter().enumerate() {
                decl.extend(w.name.span.map(|s| (s, S::Waypoint(nid, i))));
            }
        }
    }

    fn name(&mut self, ident: &ast::Ident, what: &str) -> Spanned<String> {
        if let Some(d) = value::check_dns1123_label(&ident.text, ident.span, what) {
            self.diags.push(d);
        }
        Spanned::new(ident.text.clone(), ident.span)
    }

    /// The block's name, or a diagnostic if it has none.
    fn block_name(&mut self, b: &Block, what: &str, example: &str) -> Option<Spanned<String>> {
        match &b.name {
            Some(n) => Some(self.name(n, what)),
            None => {
                self.diags.push(
                    Diagnostic::new(
                        codes::BLOCK_LABEL,
                        format!("this `{}` block has no name", b.kind.text),
                        b.kind.span,
                        "name missing",
                    )
                    .with_help(format!("write `{} {example} {{ ... }}`", b.kind.text)),
                );
                None
            }
        }
    }

    fn no_name(&mut self, b: &Block) {
        if let Some(n) = &b.name {
            self.diags.push(
                Diagnostic::new(
                    codes::BLOCK_LABEL,
                    format!("a `{}` block takes no name", b.kind.text),
                    n.span,
                    "unexpected name",
                )
                .with_help(format!("write `{} {{ ... }}`", b.kind.text)),
            );
        }
    }
}

#[derive(Clone, Copy)]
enum Named {
    Workload(WorkloadId),
    Gateway(GatewayId),
}
