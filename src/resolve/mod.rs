//! Names and structure: the ASTs of a loaded program → the HIR.
//!
//! Owns loading ([`load`]: files, imports, stdlib, cycles), the block and
//! attribute schema ([`schema`]), and name resolution: `let` constants,
//! namespaces (blocks of one name merge, so several files may add to one
//! namespace), workloads, gateways, waypoints, ports and listeners are
//! declared first; then flows, routes and `expect`s are resolved against
//! them, with did-you-mean for unknown names. Values are parsed with the
//! `typeck` value parsers as they are read. Everything that could be built is
//! returned beside the diagnostics.

pub mod load;
pub mod schema;
pub mod stdlib;

use crate::ast::{self, Block, FlowKind, Stmt, Target, Value};
use crate::diag::{Diagnostic, codes, did_you_mean};
use crate::hir::*;
use crate::source::Span;
use crate::typeck;
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

/// Names that cannot name a workload or gateway.
const RESERVED: &[&str] = &["world"];

/// Resolves a loaded program. Files that did not parse are skipped (their
/// syntax errors are already in `loaded.diagnostics`).
pub fn resolve(loaded: &Loaded) -> (Program, Vec<Diagnostic>) {
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
    let values = Values { consts: &consts, used: RefCell::new(Default::default()) };

    let mut r = Resolver {
        values: &values,
        diags,
        program: Program::default(),
        pending_flows: Vec::new(),
        pending_routes: Vec::new(),
        names: BTreeMap::new(),
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
    (r.program, r.diags)
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
}

/// A `mesh`/`cluster` attribute and whether it came from the stdlib.
type OptionAttr<'a> = (&'a ast::Attr, bool);

impl<'a> Resolver<'a> {
    fn name(&mut self, ident: &ast::Ident, what: &str) -> Spanned<String> {
        if let Some(d) = typeck::check_dns1123_label(&ident.text, ident.span, what) {
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

    // ------------------------------------------------------------ options

    /// Merges `mesh` and `cluster` blocks: a program's own settings override
    /// the stdlib's; the same setting twice at one level is a conflict.
    fn options(&mut self, blocks: &[(&'a Block, bool)]) {
        let mut mesh: BTreeMap<&str, OptionAttr<'a>> = BTreeMap::new();
        let mut cluster: BTreeMap<&str, OptionAttr<'a>> = BTreeMap::new();
        for (b, is_stdlib) in blocks {
            self.no_name(b);
            let (shape, target) = if b.kind.text == "mesh" { (&MESH, &mut mesh) } else { (&CLUSTER, &mut cluster) };
            let parts = split(&b.body.stmts, shape, &mut self.diags);
            for (key, attr) in parts.attrs {
                match target.get(key) {
                    Some((_, true)) if !is_stdlib => {
                        target.insert(key, (attr, *is_stdlib));
                    }
                    Some((_, false)) if *is_stdlib => {}
                    Some((first, _)) => self.diags.push(
                        Diagnostic::new(
                            codes::CONFLICTING_OPTION,
                            format!("`{}.{key}` is set in two places", b.kind.text),
                            attr.key.span,
                            "set again here",
                        )
                        .with_secondary(first.key.span, "first set here")
                        .with_help("set each option once for the whole program"),
                    ),
                    None => {
                        target.insert(key, (attr, *is_stdlib));
                    }
                }
            }
        }
        let v = self.values;
        let m = &mut self.program.mesh;
        let mut errs = Vec::new();
        if let Some((a, _)) = mesh.get("trust_domain") {
            match v.string(&a.value) {
                Ok((s, sp)) => {
                    errs.extend(typeck::check_trust_domain(&s, sp));
                    m.trust_domain = Spanned::new(s, sp);
                }
                Err(d) => errs.push(d),
            }
        }
        if let Some((a, _)) = mesh.get("mtls") {
            match v.word(&a.value, MTLS_MODES, "mTLS mode") {
                Ok((t, sp)) => m.mtls = Spanned::new(t, sp),
                Err(d) => errs.push(d),
            }
        }
        if let Some((a, _)) = mesh.get("root_namespace") {
            match v.string(&a.value) {
                Ok((s, sp)) => {
                    errs.extend(typeck::check_dns1123_label(&s, sp, "namespace"));
                    m.root_namespace = Spanned::new(s, sp);
                }
                Err(d) => errs.push(d),
            }
        }
        let c = &mut self.program.cluster;
        if let Some((a, _)) = cluster.get("stack") {
            match v.string(&a.value) {
                Ok((s, sp)) => {
                    errs.extend(typeck::check_dns1123_label(&s, sp, "stack name"));
                    c.stack = Some(Spanned::new(s, sp));
                }
                Err(d) => errs.push(d),
            }
        }
        if let Some((a, _)) = cluster.get("cilium_version") {
            match v.string(&a.value) {
                Ok((s, sp)) => match typeck::parse_version(&s) {
                    Some(ver) => c.cilium_version = Spanned::new(ver, sp),
                    None => errs.push(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            format!("`{s}` is not a version"),
                            sp,
                            "expected `major.minor`",
                        )
                        .with_help("write the Cilium version as \"1.18\" or \"1.18.3\""),
                    ),
                },
                Err(d) => errs.push(d),
            }
        }
        if let Some((a, _)) = cluster.get("hbone") {
            match v.word(&a.value, HBONE_MODES, "HBONE mode") {
                Ok((t, sp)) => c.hbone = Spanned::new(t, sp),
                Err(d) => errs.push(d),
            }
        }
        for (key, slot) in [
            ("allow_dns", &mut c.allow_dns),
            ("allow_ambient_probes", &mut c.allow_ambient_probes),
            ("default_deny", &mut c.default_deny),
        ] {
            if let Some((a, _)) = cluster.get(key) {
                match v.boolean(&a.value) {
                    Ok((b, sp)) => *slot = Spanned::new(b, sp),
                    Err(d) => errs.push(d),
                }
            }
        }
        if let Some((a, _)) = cluster.get("system_namespaces") {
            match v.list(&a.value) {
                Ok(items) => {
                    for item in items {
                        match v.string(item) {
                            Ok((s, sp)) => {
                                errs.extend(typeck::check_dns1123_label(&s, sp, "namespace"));
                                c.system_namespaces.push(Spanned::new(s, sp));
                            }
                            Err(d) => errs.push(d),
                        }
                    }
                }
                Err(d) => errs.push(d),
            }
        }
        if let Some((a, _)) = cluster.get("deny_egress") {
            match v.list(&a.value) {
                Ok(items) => {
                    for item in items {
                        match v.cidr(item).and_then(|(t, sp)| typeck::parse_cidr(&t, sp).map(|c| (c, sp))) {
                            Ok((cidr, sp)) => c.deny_egress.push(Spanned::new(cidr, sp)),
                            Err(d) => errs.push(d),
                        }
                    }
                }
                Err(d) => errs.push(d),
            }
        }
        self.diags.extend(errs);
    }

    // ------------------------------------------------------- declarations

    /// Declares every namespace and what it contains. Blocks with the same
    /// namespace name add to one namespace.
    fn declare_namespaces(&mut self, blocks: &[&'a Block]) {
        for b in blocks {
            let Some(name) = self.block_name(b, "namespace", "demo") else { continue };
            if let (true, Some(span)) = (RESERVED.contains(&name.value.as_str()), name.span) {
                self.diags.push(reserved(&name.value, span));
                continue;
            }
            let id = match self.find_namespace(&name.value) {
                Some(id) => id,
                None => {
                    let id = NamespaceId(self.program.namespaces.len());
                    self.program.namespaces.push(Namespace {
                        name: name.clone(),
                        workloads: Vec::new(),
                        gateways: Vec::new(),
                        waypoints: Vec::new(),
                        span: b.span,
                    });
                    id
                }
            };
            self.declare_members(b, id);
        }
    }

    fn declare_members(&mut self, b: &'a Block, ns: NamespaceId) {
        let parts = split(&b.body.stmts, &NAMESPACE, &mut self.diags);
        self.pending_flows.extend(parts.flows.into_iter().map(|f| (f, Some(ns))));
        for m in parts.blocks {
            match m.kind.text.as_str() {
                "workload" => {
                    if let Some(w) = self.workload(m) {
                        self.add_named(ns, w.name.clone(), "workload", |n| &mut n.workloads, w);
                    }
                }
                "gateway" => {
                    if let Some((g, routes)) = self.gateway(m) {
                        let index = self.program.namespace(ns).map_or(0, |n| n.gateways.len());
                        if self.add_named(ns, g.name.clone(), "gateway", |n| &mut n.gateways, g) {
                            let gid = GatewayId { ns, index };
                            self.pending_routes.extend(routes.into_iter().map(|r| (r, gid)));
                        }
                    }
                }
                _ => {
                    if let Some(w) = self.waypoint(m) {
                        let Some(n) = self.program.namespaces.get_mut(ns.0) else { continue };
                        if let Some(first) = n.waypoints.iter().find(|x| x.name.value == w.name.value) {
                            if let (Some(s), Some(f)) = (w.name.span, first.name.span) {
                                self.diags.push(duplicate("waypoint", &w.name.value, s, f));
                            }
                        } else {
                            n.waypoints.push(w);
                        }
                    }
                }
            }
        }
    }

    /// Adds a workload or gateway; the two share one set of names, because a
    /// flow names either without saying which.
    fn add_named<T>(
        &mut self,
        ns: NamespaceId,
        name: Spanned<String>,
        what: &str,
        list: impl Fn(&mut Namespace) -> &mut Vec<T>,
        item: T,
    ) -> bool {
        let key = (ns, name.value.clone());
        let taken = self.names.contains_key(&key);
        let Some(n) = self.program.namespaces.get_mut(ns.0) else { return false };
        let first = if !taken {
            None
        } else {
            n.workloads
                .iter()
                .map(|w| &w.name)
                .chain(n.gateways.iter().map(|g| &g.name))
                .find(|x| x.value == name.value)
                .and_then(|x| x.span)
        };
        if let (Some(first), Some(span)) = (first, name.span) {
            let other = if n.workloads.iter().any(|w| w.name.value == name.value) { "workload" } else { "gateway" };
            let d = if other == what {
                duplicate(what, &name.value, span, first)
            } else {
                Diagnostic::new(
                    codes::DUPLICATE_NAME,
                    format!("`{}` is already the name of a {other} in namespace `{}`", name.value, n.name.value),
                    span,
                    format!("this {what}"),
                )
                .with_secondary(first, format!("the {other}"))
                .with_help(
                    "workloads and gateways of one namespace share their names, because flows name either; rename one",
                )
            };
            self.diags.push(d);
            return false;
        }
        if let (true, Some(span)) = (RESERVED.contains(&name.value.as_str()), name.span) {
            self.diags.push(reserved(&name.value, span));
            return false;
        }
        let items = list(n);
        let index = items.len();
        items.push(item);
        let named = if what == "workload" {
            Named::Workload(WorkloadId { ns, index })
        } else {
            Named::Gateway(GatewayId { ns, index })
        };
        self.names.insert(key, named);
        true
    }

    fn workload(&mut self, b: &'a Block) -> Option<Workload> {
        let name = self.block_name(b, "workload", "api")?;
        let parts = split(&b.body.stmts, &WORKLOAD, &mut self.diags);
        let v = self.values;
        let service_account = match parts.attrs.get("service_account") {
            Some(a) => match v.string(&a.value) {
                Ok((s, sp)) => {
                    if let Some(d) = typeck::check_service_account(&s, sp) {
                        self.diags.push(d);
                    }
                    Spanned::new(s, sp)
                }
                Err(d) => {
                    self.diags.push(d);
                    Spanned::default_value(name.value.clone())
                }
            },
            None => Spanned::default_value(name.value.clone()),
        };
        let mut selector: Option<Vec<(Spanned<String>, Spanned<String>)>> = None;
        let mut selector_span = None;
        let mut ports: Vec<Port> = Vec::new();
        let mut invalid_ports: Vec<Spanned<String>> = Vec::new();
        for inner in parts.blocks {
            if inner.kind.text == "selector" {
                self.no_name(inner);
                if selector.is_some() {
                    self.diags.push(
                        Diagnostic::new(
                            codes::DUPLICATE_ATTRIBUTE,
                            "a workload has one `selector`",
                            inner.kind.span,
                            "second selector",
                        )
                        .with_help("put every label in one `selector` block"),
                    );
                    continue;
                }
                selector = Some(self.labels(inner));
                selector_span = Some(inner.span);
            } else if let Some(declared) = self.port(inner) {
                let d = declare("port", declared, &mut ports, &mut invalid_ports, |p| &p.name);
                self.diags.extend(d);
            }
        }
        let mut selector = selector.unwrap_or_else(|| {
            vec![(Spanned::default_value("app".into()), Spanned::default_value(name.value.clone()))]
        });
        selector.sort_by(|a, b| a.0.value.cmp(&b.0.value));
        let service = match parts.attrs.get("service") {
            Some(a) => match v.string(&a.value) {
                Ok((s, sp)) => {
                    if let Some(d) = typeck::check_dns1123_label(&s, sp, "service") {
                        self.diags.push(d);
                    }
                    Spanned::new(s, sp)
                }
                Err(d) => {
                    self.diags.push(d);
                    Spanned::default_value(name.value.clone())
                }
            },
            None => Spanned::default_value(name.value.clone()),
        };
        let mut flag = |key: &str| match parts.attrs.get(key).map(|a| v.boolean(&a.value)) {
            Some(Ok((b, sp))) => Spanned::new(b, sp),
            Some(Err(d)) => {
                self.diags.push(d);
                Spanned::default_value(false)
            }
            None => Spanned::default_value(false),
        };
        let uses_pod_ips = flag("uses_pod_ips");
        let scrapes_waypoints = flag("scrapes_waypoints");
        let uses_kube_api = flag("uses_kube_api");
        let waypoint = match parts.attrs.get("waypoint").map(|a| v.string(&a.value)) {
            Some(Ok((s, sp))) => Some(Spanned::new(s, sp)),
            Some(Err(d)) => {
                self.diags.push(d);
                None
            }
            None => None,
        };
        Some(Workload {
            name,
            service_account,
            selector,
            selector_span,
            ports,
            service,
            uses_pod_ips,
            scrapes_waypoints,
            uses_kube_api,
            waypoint,
            invalid_ports,
            span: b.span,
        })
    }

    fn labels(&mut self, b: &'a Block) -> Vec<(Spanned<String>, Spanned<String>)> {
        let mut out: Vec<(Spanned<String>, Spanned<String>)> = Vec::new();
        for s in &b.body.stmts {
            let Stmt::Attr(a) = s else {
                self.diags.push(
                    Diagnostic::new(
                        codes::MISPLACED,
                        format!("{} is not allowed in a selector", s.describe()),
                        s.span(),
                        "not a label",
                    )
                    .with_help("a selector holds labels: `app = \"api\"`"),
                );
                continue;
            };
            if let Some((first, _)) = out.iter().find(|(k, _)| k.value == a.key.text) {
                if let Some(f) = first.span {
                    self.diags.push(
                        Diagnostic::new(
                            codes::DUPLICATE_ATTRIBUTE,
                            format!("label `{}` is set twice", a.key.text),
                            a.key.span,
                            "set again here",
                        )
                        .with_secondary(f, "first set here")
                        .with_help("each label may be set only once"),
                    );
                }
                continue;
            }
            match self.values.string(&a.value) {
                Ok((value, vs)) => {
                    self.diags.extend(typeck::check_label(&a.key.text, a.key.span, &value, vs));
                    out.push((Spanned::new(a.key.text.clone(), a.key.span), Spanned::new(value, vs)));
                }
                Err(d) => self.diags.push(d),
            }
        }
        if b.body.stmts.is_empty() {
            self.diags.push(
                Diagnostic::new(codes::EMPTY, "empty selector", b.body.span, "selects every pod of the namespace")
                    .with_help("name at least one label, e.g. `selector { app = \"api\" }`, or drop the block to use `app = <workload name>`"),
            );
        }
        out
    }

    fn port_number(&mut self, a: Option<&&'a ast::Attr>) -> Option<Spanned<u16>> {
        let a = a?;
        // The number's span is where it is used (a constant may be shared).
        let at = a.value.span();
        match self.values.number(&a.value).and_then(|(t, sp)| typeck::parse_port(&t, sp).map(|n| Spanned::new(n, at))) {
            Ok(n) => Some(n),
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    /// A port; with an error in its number or protocol (reported here), only
    /// its name, which stays declared.
    fn port(&mut self, b: &'a Block) -> Option<Result<Port, Spanned<String>>> {
        let name = self.block_name(b, "port", "http")?;
        let parts = split(&b.body.stmts, &PORT, &mut self.diags);
        parts.require("port", "number", "8080", b.kind.span, &mut self.diags);
        let number = self.port_number(parts.attrs.get("number"));
        let protocol = match parts.attrs.get("protocol") {
            Some(a) => match self.values.word(&a.value, PROTOCOLS, "protocol") {
                Ok((p, sp)) => Some(Spanned::new(p, sp)),
                Err(d) => {
                    self.diags.push(d);
                    None
                }
            },
            None => Some(Spanned::default_value(Protocol::Tcp)),
        };
        Some(match (number, protocol) {
            (Some(number), Some(protocol)) => Ok(Port { name, number, protocol, span: b.span }),
            _ => Err(name),
        })
    }

    fn gateway(&mut self, b: &'a Block) -> Option<(Gateway, Vec<&'a ast::Route>)> {
        let name = self.block_name(b, "gateway", "ingress")?;
        let parts = split(&b.body.stmts, &GATEWAY, &mut self.diags);
        let mut listeners: Vec<Listener> = Vec::new();
        let mut invalid_listeners: Vec<Spanned<String>> = Vec::new();
        for l in &parts.blocks {
            let Some(declared) = self.listener(l) else { continue };
            let d = declare("listener", declared, &mut listeners, &mut invalid_listeners, |l| &l.name);
            self.diags.extend(d);
        }
        if parts.blocks.is_empty() {
            self.diags.push(
                Diagnostic::new(
                    codes::MISSING_ATTRIBUTE,
                    format!("gateway `{}` has no listener", name.value),
                    b.kind.span,
                    "no listener",
                )
                .with_help("add `listener http { port = 80 }`"),
            );
        }
        if name.value.len() > 57
            && let Some(sp) = name.span
        {
            self.diags.push(
                    Diagnostic::new(codes::BAD_DNS1123, format!("gateway name `{}` is too long", name.value), sp, "more than 57 characters")
                        .with_note("Istio names the gateway's deployment and service account `<gateway>-istio`, which must fit in 63 characters"),
                );
        }
        Some((Gateway { name, listeners, invalid_listeners, routes: Vec::new(), span: b.span }, parts.routes))
    }

    /// A listener; with an error in its port or protocol (reported here),
    /// only its name, which stays declared.
    fn listener(&mut self, b: &'a Block) -> Option<Result<Listener, Spanned<String>>> {
        let name = self.block_name(b, "listener", "http")?;
        let parts = split(&b.body.stmts, &LISTENER, &mut self.diags);
        parts.require("listener", "port", "80", b.kind.span, &mut self.diags);
        let port = self.port_number(parts.attrs.get("port"));
        let v = self.values;
        let protocol = match parts.attrs.get("protocol") {
            Some(a) => match v.word(&a.value, LISTENER_PROTOCOLS, "listener protocol") {
                Ok((p, sp)) => Some(Spanned::new(p, sp)),
                Err(d) => {
                    self.diags.push(d);
                    None
                }
            },
            None => Some(Spanned::default_value(ListenerProtocol::Http)),
        };
        let (Some(port), Some(protocol)) = (port, protocol) else { return Some(Err(name)) };
        let hostname = match parts.attrs.get("hostname") {
            Some(a) => {
                match v.string(&a.value).and_then(|(s, sp)| typeck::parse_hostname(&s, sp).map(|n| Spanned::new(n, sp)))
                {
                    Ok(h) => Some(h),
                    Err(d) => {
                        self.diags.push(d);
                        None
                    }
                }
            }
            None => None,
        };
        let certificate = match parts.attrs.get("certificate") {
            Some(a) => match v.string(&a.value) {
                Ok((s, sp)) => {
                    if let Some(d) = typeck::check_secret_name(&s, sp) {
                        self.diags.push(d);
                    }
                    Some(Spanned::new(s, sp))
                }
                Err(d) => {
                    self.diags.push(d);
                    None
                }
            },
            None => None,
        };
        if protocol.value == ListenerProtocol::Https
            && certificate.is_none()
            && !parts.attrs.contains_key("certificate")
        {
            parts.require("listener", "certificate", "\"my-tls-secret\"", b.kind.span, &mut self.diags);
        }
        Some(Ok(Listener { name, port, protocol, hostname, certificate, span: b.span }))
    }

    fn waypoint(&mut self, b: &'a Block) -> Option<Waypoint> {
        let name = self.block_name(b, "waypoint", "waypoint")?;
        let parts = split(&b.body.stmts, &WAYPOINT, &mut self.diags);
        let for_ = match parts.attrs.get("for") {
            Some(a) => match self.values.word(&a.value, WAYPOINT_FOR, "waypoint traffic type") {
                Ok((t, sp)) => Spanned::new(t, sp),
                Err(d) => {
                    self.diags.push(d);
                    Spanned::default_value(WaypointFor::Service)
                }
            },
            None => Spanned::default_value(WaypointFor::Service),
        };
        Some(Waypoint { name, for_, span: b.span })
    }

    /// A workload's `waypoint` must name a waypoint of its namespace.
    fn workload_waypoints(&mut self) {
        let mut out = Vec::new();
        for n in &self.program.namespaces {
            for w in &n.workloads {
                let Some(wp) = &w.waypoint else { continue };
                if n.waypoints.iter().any(|x| x.name.value == wp.value) {
                    continue;
                }
                let Some(span) = wp.span else { continue };
                let mut d = Diagnostic::new(
                    codes::UNKNOWN_NAME,
                    format!("no waypoint `{}` in namespace `{}`", wp.value, n.name.value),
                    span,
                    "not declared",
                );
                d = match did_you_mean(&wp.value, n.waypoints.iter().map(|x| x.name.value.as_str())) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("declare it in the namespace: `waypoint {} {{}}`", wp.value)),
                };
                out.push(d);
            }
        }
        self.diags.extend(out);
    }

    // ---------------------------------------------------------- references

    fn find_namespace(&self, name: &str) -> Option<NamespaceId> {
        self.program.namespaces.iter().position(|n| n.name.value == name).map(NamespaceId)
    }

    fn namespace_ref(&mut self, ident: &ast::Ident) -> Option<NamespaceId> {
        let found = self.find_namespace(&ident.text);
        if found.is_none() {
            let mut d = Diagnostic::new(
                codes::UNKNOWN_NAMESPACE,
                format!("unknown namespace `{}`", ident.text),
                ident.span,
                "not declared",
            );
            let is_workload = self.program.namespaces.iter().find(|n| {
                n.workloads.iter().any(|w| w.name.value == ident.text)
                    || n.gateways.iter().any(|g| g.name.value == ident.text)
            });
            if let Some(s) = did_you_mean(&ident.text, self.program.namespaces.iter().map(|n| n.name.value.as_str())) {
                d = d.with_help(format!("did you mean `{s}`?"));
            } else if let Some(n) = is_workload {
                d = d.with_help(format!(
                    "`{}` is a workload or gateway of namespace `{}`: name it as `{}/{}`",
                    ident.text, n.name.value, n.name.value, ident.text
                ));
            } else if RESERVED.contains(&ident.text.as_str()) {
                d = d.with_help(format!("`{}` is a reserved word and cannot name a namespace", ident.text));
            } else if ident.text == "monitoring" {
                d = d.with_help("`import \"std/observability\"` declares `namespace monitoring` with Prometheus");
            } else {
                d = d.with_help(format!("declare it: `namespace {} {{ ... }}`", ident.text));
            }
            self.diags.push(d);
        }
        found
    }

    /// A workload or gateway named `name` or `ns/name`.
    fn named(&mut self, ns: Option<&ast::Ident>, name: &ast::Ident, scope: Option<NamespaceId>) -> Option<Named> {
        let ns_id = match ns {
            Some(n) => self.namespace_ref(n)?,
            None => match scope {
                Some(s) => s,
                None => {
                    self.diags.push(
                        Diagnostic::new(
                            codes::UNKNOWN_NAME,
                            format!("`{}` needs a namespace here", name.text),
                            name.span,
                            "unqualified name at the top level",
                        )
                        .with_help(format!(
                            "write `<namespace>/{}`, or move the flow into its namespace block",
                            name.text
                        )),
                    );
                    return None;
                }
            },
        };
        if let Some(found) = self.names.get(&(ns_id, name.text.clone())) {
            return Some(*found);
        }
        let n = self.program.namespace(ns_id)?;
        if n.waypoints.iter().any(|w| w.name.value == name.text) {
            self.diags.push(
                Diagnostic::new(
                    codes::WRONG_KIND,
                    format!("`{}` is a waypoint", name.text),
                    name.span,
                    "not a workload or gateway",
                )
                .with_help(
                    "waypoints are placed by ztp on the path of flows with `http` rules; name the workloads instead",
                ),
            );
            return None;
        }
        let candidates: Vec<&str> = n
            .workloads
            .iter()
            .map(|w| w.name.value.as_str())
            .chain(n.gateways.iter().map(|g| g.name.value.as_str()))
            .collect();
        let mut d = Diagnostic::new(
            codes::UNKNOWN_NAME,
            format!("no workload or gateway `{}` in namespace `{}`", name.text, n.name.value),
            name.span,
            "not declared",
        );
        if let Some(s) = did_you_mean(&name.text, candidates.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if let Some(other) = self.program.namespaces.iter().find(|o| {
            o.workloads.iter().any(|w| w.name.value == name.text)
                || o.gateways.iter().any(|g| g.name.value == name.text)
        }) {
            d = d.with_help(format!(
                "`{}` is declared in namespace `{}`: write `{}/{}`",
                name.text, other.name.value, other.name.value, name.text
            ));
        } else if self.find_namespace(&name.text).is_some() {
            d = d.with_help(format!(
                "to mean every workload of namespace `{}`, write `namespace({})`",
                name.text, name.text
            ));
        }
        self.diags.push(d);
        None
    }

    fn empty_except(&mut self, e: &ast::Endpoint) {
        if let Some(x) = e.except.as_ref().filter(|x| x.targets.is_empty()) {
            self.diags.push(
                Diagnostic::new(codes::EMPTY, "`except []` leaves nothing out", x.span, "empty list")
                    .with_help("list what to leave out, or remove `except`"),
            );
        }
    }

    fn source(&mut self, e: &ast::Endpoint, scope: Option<NamespaceId>) -> Option<Spanned<Source>> {
        self.empty_except(e);
        if let Some(p) = &e.port {
            self.diags.push(
                Diagnostic::new(codes::BAD_PORT_REF, "a source has no port", p.span(), "port on the source")
                    .with_help("ports belong to the destination: `allow a -> b:port`"),
            );
        }
        let src = match &e.target {
            Target::World(_) => {
                self.no_except(e, "`world`");
                Source::World
            }
            Target::Namespace { name, .. } => {
                let ns = self.namespace_ref(name)?;
                let mut except = Vec::new();
                for t in e.except.iter().flat_map(|x| &x.targets) {
                    match t {
                        Target::Ref { ns: qn, name, .. } => match self.named(qn.as_ref(), name, Some(ns))? {
                            Named::Workload(w) if w.ns == ns => except.push(w),
                            _ => self.diags.push(
                                Diagnostic::new(
                                    codes::BAD_EXCEPT,
                                    format!("`{}` is not a workload of namespace `{}`", name.text, self.ns_name(ns)),
                                    t.span(),
                                    "cannot be excepted",
                                )
                                .with_help("`namespace(x) except ...` lists workloads of namespace x"),
                            ),
                        },
                        other => self.diags.push(
                            Diagnostic::new(
                                codes::BAD_EXCEPT,
                                "`namespace(...) except` lists workloads",
                                other.span(),
                                "not a workload",
                            )
                            .with_help("write `namespace(x) except [a, b]` with workload names"),
                        ),
                    }
                }
                Source::Namespace { ns, except }
            }
            Target::Cidr(t) => Source::Cidr(self.cidr_set(t, e)?),
            Target::Fqdn(s) => {
                self.diags.push(
                    Diagnostic::new(codes::BAD_ENDPOINT, format!("`\"{}\"` cannot be a source", s.value), s.span, "DNS name as source")
                        .with_help("DNS names are egress destinations; for traffic from outside the cluster, use `world` toward a gateway or a CIDR"),
                );
                return None;
            }
            Target::Ref { ns, name, .. } => {
                self.no_except(e, &format!("`{}`", name.text));
                match self.named(ns.as_ref(), name, scope)? {
                    Named::Workload(w) => Source::Workload(w),
                    Named::Gateway(g) => Source::Gateway(g),
                }
            }
        };
        Some(Spanned::new(src, e.span))
    }

    fn ns_name(&self, ns: NamespaceId) -> String {
        self.program.namespace(ns).map(|n| n.name.value.clone()).unwrap_or_default()
    }

    fn no_except(&mut self, e: &ast::Endpoint, what: &str) {
        if let Some(x) = &e.except {
            self.diags.push(
                Diagnostic::new(codes::BAD_EXCEPT, format!("{what} cannot have `except`"), x.span, "not allowed here")
                    .with_help("`except` narrows `namespace(x)` (by workloads) or a CIDR (by CIDRs)"),
            );
        }
    }

    fn cidr_set(&mut self, t: &ast::Token, e: &ast::Endpoint) -> Option<CidrSet> {
        let cidr = match typeck::parse_cidr(&t.text, t.span) {
            Ok(c) => Spanned::new(c, t.span),
            Err(d) => {
                self.diags.push(d);
                return None;
            }
        };
        let mut except = Vec::new();
        for x in e.except.iter().flat_map(|x| &x.targets) {
            match x {
                Target::Cidr(tok) => match typeck::parse_cidr(&tok.text, tok.span) {
                    Ok(c) => except.push(Spanned::new(c, tok.span)),
                    Err(d) => self.diags.push(d),
                },
                other => self.diags.push(
                    Diagnostic::new(codes::BAD_EXCEPT, "a CIDR's `except` lists CIDRs", other.span(), "not a CIDR")
                        .with_help("write `10.0.0.0/8 except [10.1.0.0/16]`"),
                ),
            }
        }
        Some(CidrSet { cidr, except })
    }

    fn dest(&mut self, e: &ast::Endpoint, scope: Option<NamespaceId>) -> Option<Spanned<Dest>> {
        self.empty_except(e);
        let numeric_port = |r: &mut Self| -> Option<Option<Spanned<u16>>> {
            match &e.port {
                None => Some(None),
                Some(ast::PortRef::Number(t)) => match typeck::parse_port(&t.text, t.span) {
                    Ok(n) => Some(Some(Spanned::new(n, t.span))),
                    Err(d) => {
                        r.diags.push(d);
                        None
                    }
                },
                Some(ast::PortRef::Name(i)) => {
                    r.diags.push(
                        Diagnostic::new(
                            codes::BAD_PORT_REF,
                            format!("named port `{}` on an external destination", i.text),
                            i.span,
                            "not a number",
                        )
                        .with_help(
                            "external destinations take port numbers, e.g. `:443`; port names belong to workloads",
                        ),
                    );
                    None
                }
            }
        };
        let dst = match &e.target {
            Target::World(s) => {
                self.diags.push(
                    Diagnostic::new(codes::BAD_ENDPOINT, "`world` cannot be a destination", *s, "not a destination")
                        .with_help("name the external destination: a DNS name such as `\"api.github.com\":443` or a CIDR such as `203.0.113.0/24:443`"),
                );
                return None;
            }
            Target::Namespace { span, name } => {
                self.diags.push(
                    Diagnostic::new(
                        codes::BAD_ENDPOINT,
                        format!("`namespace({})` cannot be a destination", name.text),
                        *span,
                        "not a destination",
                    )
                    .with_help("allow each destination workload port; flows go to a workload, a DNS name or a CIDR"),
                );
                return None;
            }
            Target::Fqdn(s) => {
                self.no_except(e, "a DNS name");
                let name = match typeck::parse_dns_name(&s.value, s.span) {
                    Ok(n) => Spanned::new(n, s.span),
                    Err(d) => {
                        self.diags.push(d);
                        return None;
                    }
                };
                Dest::Fqdn { name, port: numeric_port(self)? }
            }
            Target::Cidr(t) => {
                let set = self.cidr_set(t, e);
                let port = numeric_port(self)?;
                Dest::Cidr { set: set?, port }
            }
            Target::Ref { ns, name, .. } => {
                if let Some(x) = &e.except {
                    self.diags.push(
                        Diagnostic::new(
                            codes::BAD_EXCEPT,
                            format!("destination `{}` cannot have `except`", name.text),
                            x.span,
                            "not allowed here",
                        )
                        .with_help(
                            "to leave out sources, put `except` on the source: `namespace(x) except a -> b:port`",
                        ),
                    );
                }
                match self.named(ns.as_ref(), name, scope)? {
                    Named::Workload(id) => {
                        Dest::Workload { id, ports: self.workload_ports(id, e.port.as_ref(), name)? }
                    }
                    Named::Gateway(id) => {
                        Dest::Gateway { id, listeners: self.gateway_listeners(id, e.port.as_ref(), name)? }
                    }
                }
            }
        };
        Some(Spanned::new(dst, e.span))
    }

    fn workload_ports(&mut self, id: WorkloadId, port: Option<&ast::PortRef>, at: &ast::Ident) -> Option<Vec<usize>> {
        let w = self.program.workload(id)?;
        let path = self.program.workload_path(id);
        let listed = || {
            w.ports.iter().map(|p| format!("`{}` ({})", p.name.value, p.number.value)).collect::<Vec<_>>().join(", ")
        };
        // A port declared with an error may be the one meant: its error is
        // the only one reported.
        let invalid = |name: Option<&str>| match name {
            Some(n) => w.invalid_ports.iter().any(|p| p.value == n),
            None => !w.invalid_ports.is_empty(),
        };
        let d = match port {
            None if w.ports.is_empty() && invalid(None) => return None,
            None if w.ports.is_empty() => Diagnostic::new(
                codes::UNKNOWN_PORT,
                format!("`{path}` declares no ports"),
                at.span,
                "no ports to allow",
            )
            .with_help("declare one: `port http { number = 8080, protocol = http }`"),
            None => return Some((0..w.ports.len()).collect()),
            Some(ast::PortRef::Name(i)) => {
                if let Some(ix) = w.ports.iter().position(|p| p.name.value == i.text) {
                    return Some(vec![ix]);
                }
                if invalid(Some(&i.text)) {
                    return None;
                }
                let mut d = Diagnostic::new(
                    codes::UNKNOWN_PORT,
                    format!("`{path}` has no port `{}`", i.text),
                    i.span,
                    "unknown port",
                );
                if let Some(s) = did_you_mean(&i.text, w.ports.iter().map(|p| p.name.value.as_str())) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                } else if w.ports.is_empty() {
                    d = d.with_help("this workload declares no ports; add `port NAME { number = N }`");
                } else {
                    d = d.with_help(format!("its ports are {}", listed()));
                }
                d
            }
            Some(ast::PortRef::Number(t)) => {
                let n = match typeck::parse_port(&t.text, t.span) {
                    Ok(n) => n,
                    Err(d) => {
                        self.diags.push(d);
                        return None;
                    }
                };
                if let Some(ix) = w.ports.iter().position(|p| p.number.value == n) {
                    return Some(vec![ix]);
                }
                if invalid(None) {
                    return None;
                }
                let help = if w.ports.is_empty() {
                    "this workload declares no ports; add `port NAME { number = N }`".to_string()
                } else {
                    format!("its ports are {}", listed())
                };
                Diagnostic::new(codes::UNKNOWN_PORT, format!("`{path}` has no port {n}"), t.span, "not declared")
                    .with_help(help)
            }
        };
        self.diags.push(d);
        None
    }

    fn gateway_listeners(&mut self, id: GatewayId, port: Option<&ast::PortRef>, at: &ast::Ident) -> Option<Vec<usize>> {
        let g = self.program.gateway(id)?;
        let path = self.program.gateway_path(id);
        // As for workload ports: a listener declared with an error may be the
        // one meant, and its error is the only one reported.
        let (found, invalid) = match port {
            None if g.listeners.is_empty() && !g.invalid_listeners.is_empty() => return None,
            None => return Some((0..g.listeners.len()).collect()),
            Some(ast::PortRef::Name(i)) => (
                g.listeners.iter().position(|l| l.name.value == i.text),
                g.invalid_listeners.iter().any(|l| l.value == i.text),
            ),
            Some(ast::PortRef::Number(t)) => match typeck::parse_port(&t.text, t.span) {
                Ok(n) => (g.listeners.iter().position(|l| l.port.value == n), !g.invalid_listeners.is_empty()),
                Err(d) => {
                    self.diags.push(d);
                    return None;
                }
            },
        };
        if let Some(ix) = found {
            return Some(vec![ix]);
        }
        if invalid {
            return None;
        }
        let span = port.map_or(at.span, ast::PortRef::span);
        let mut d = Diagnostic::new(
            codes::UNKNOWN_PORT,
            format!("gateway `{path}` has no such listener"),
            span,
            "unknown listener",
        );
        if let Some(ast::PortRef::Name(i)) = port
            && let Some(s) = did_you_mean(&i.text, g.listeners.iter().map(|l| l.name.value.as_str()))
        {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        if d.help.is_empty() {
            let listed = g
                .listeners
                .iter()
                .map(|l| format!("`{}` ({})", l.name.value, l.port.value))
                .collect::<Vec<_>>()
                .join(", ");
            d = d.with_help(format!("its listeners are {listed}"));
        }
        self.diags.push(d);
        None
    }

    // --------------------------------------------------- flows and routes

    fn flow(&mut self, f: &'a ast::Flow, scope: Option<NamespaceId>) {
        let src = self.source(&f.src, scope);
        let dst = self.dest(&f.dst, scope);
        let mut http = None;
        if let Some(body) = &f.body {
            if f.kind != FlowKind::Allow {
                self.diags.push(
                    Diagnostic::new(
                        codes::MISPLACED,
                        format!("`{}` takes no body", f.kind.keyword()),
                        body.span,
                        "not allowed here",
                    )
                    .with_help("an `expect` states a reachability fact about its endpoints and ports only"),
                );
            } else {
                let parts = split(&body.stmts, &FLOW, &mut self.diags);
                for (i, b) in parts.blocks.iter().enumerate() {
                    self.no_name(b);
                    if i > 0 {
                        self.diags.push(
                            Diagnostic::new(
                                codes::DUPLICATE_ATTRIBUTE,
                                "a flow has one `http` block",
                                b.kind.span,
                                "second `http` block",
                            )
                            .with_help(
                                "list every method, path and header in one `http` block, or write a second flow",
                            ),
                        );
                        continue;
                    }
                    http = self.http(b);
                }
            }
        }
        let (Some(src), Some(dst)) = (src, dst) else { return };
        match f.kind {
            FlowKind::Allow => self.program.flows.push(Flow { src, dst, http, span: f.span }),
            FlowKind::ExpectAllow | FlowKind::ExpectDeny => {
                let verdict = if f.kind == FlowKind::ExpectAllow { Verdict::Allow } else { Verdict::Deny };
                self.program.expects.push(Expect { verdict, src, dst, span: f.span });
            }
        }
    }

    fn http(&mut self, b: &'a Block) -> Option<HttpMatch> {
        let parts = split(&b.body.stmts, &HTTP, &mut self.diags);
        let v = self.values;
        let mut m = HttpMatch { methods: Vec::new(), paths: Vec::new(), headers: Vec::new(), span: b.span };
        if let Some(a) = parts.attrs.get("methods") {
            for item in self.non_empty_list(a)? {
                // A method is a word; a constant may hold one.
                let (text, sp) = match v.follow(item) {
                    Value::Ident(i) => (i.text.clone(), i.span),
                    Value::Str(s) => (s.value.clone(), s.span),
                    other => {
                        self.diags.push(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                format!("expected an HTTP method, found {}", other.describe()),
                                other.span(),
                                "not a method",
                            )
                            .with_help("write methods as words: `methods = [GET, POST]`"),
                        );
                        continue;
                    }
                };
                match typeck::parse_method(&text, sp) {
                    Ok(meth) => m.methods.push(Spanned::new(meth, sp)),
                    Err(d) => self.diags.push(d),
                }
            }
        }
        if let Some(a) = parts.attrs.get("paths") {
            for item in self.non_empty_list(a)? {
                match v.string(item) {
                    Ok((p, sp)) => {
                        if let Some(d) = typeck::check_path(&p, sp) {
                            self.diags.push(d);
                        } else {
                            m.paths.push(Spanned::new(p, sp));
                        }
                    }
                    Err(d) => self.diags.push(d),
                }
            }
        }
        if let Some(a) = parts.attrs.get("headers") {
            match v.map(&a.value) {
                Ok([]) => self.diags.push(
                    Diagnostic::new(codes::EMPTY, "`headers` is empty", a.value.span(), "empty map")
                        .with_help("list at least one header, or remove `headers` to match any"),
                ),
                Ok(entries) => {
                    for e in entries {
                        match v.string(&e.value) {
                            Ok((val, vs)) => {
                                let lower = e.key.text.to_ascii_lowercase();
                                if let Some(d) = typeck::check_header(&e.key.text, e.key.span, &val, vs) {
                                    self.diags.push(d);
                                } else if let Some((first, _)) = m.headers.iter().find(|(k, _)| k.value == lower) {
                                    let mut d = Diagnostic::new(
                                        codes::DUPLICATE_ATTRIBUTE,
                                        format!("header `{}` is matched twice", e.key.text),
                                        e.key.span,
                                        "matched again here",
                                    )
                                    .with_help("header names are case-insensitive; match each header once");
                                    if let Some(s) = first.span {
                                        d = d.with_secondary(s, "first matched here");
                                    }
                                    self.diags.push(d);
                                } else {
                                    m.headers.push((
                                        Spanned::new(e.key.text.to_ascii_lowercase(), e.key.span),
                                        Spanned::new(val, vs),
                                    ));
                                }
                            }
                            Err(d) => self.diags.push(d),
                        }
                    }
                }
                Err(d) => self.diags.push(d),
            }
        }
        m.methods.sort_by_key(|x| x.value);
        m.methods.dedup_by_key(|x| x.value);
        Some(m)
    }

    fn non_empty_list(&mut self, a: &'a ast::Attr) -> Option<&'a [Value]> {
        match self.values.list(&a.value) {
            Ok([]) => {
                self.diags.push(
                    Diagnostic::new(codes::EMPTY, format!("`{}` is empty", a.key.text), a.value.span(), "empty list")
                        .with_help(format!(
                            "an empty list matches nothing; list at least one value or remove `{}` to match any",
                            a.key.text
                        )),
                );
                None
            }
            Ok(items) => Some(items),
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    fn route(&mut self, r: &'a ast::Route, gid: GatewayId) -> Option<Route> {
        let path = match typeck::check_path(&r.path.value, r.path.span) {
            Some(d) => {
                self.diags.push(d);
                None
            }
            None if r.path.value.contains('*') => {
                self.diags.push(
                    Diagnostic::new(
                        codes::BAD_PATH,
                        "route paths are prefixes and take no `*`",
                        r.path.span,
                        "wildcard",
                    )
                    .with_help(format!(
                        "write `\"{}\"`: a route matches every path under its prefix",
                        r.path.value.trim_end_matches('*')
                    )),
                );
                None
            }
            None => Some(Spanned::new(r.path.value.clone(), r.path.span)),
        };
        let backend = match &r.target {
            Target::Ref { ns, name, .. } => match self.named(ns.as_ref(), name, Some(gid.ns))? {
                Named::Workload(w) => Some((w, name)),
                Named::Gateway(_) => {
                    self.diags.push(
                        Diagnostic::new(
                            codes::WRONG_KIND,
                            format!("`{}` is a gateway", name.text),
                            name.span,
                            "routes go to workloads",
                        )
                        .with_help("route to the workload behind it"),
                    );
                    None
                }
            },
            other => {
                self.diags.push(
                    Diagnostic::new(codes::WRONG_KIND, "a route goes to a workload", other.span(), "not a workload")
                        .with_help("write `route \"/\" -> workload:port`"),
                );
                None
            }
        };
        let (backend, at) = backend?;
        let port = match &r.port {
            Some(p) => *self.workload_ports(backend, Some(p), at)?.first()?,
            None => {
                if self.program.workload(backend)?.ports.is_empty() {
                    // The same report as a flow to a workload without ports.
                    self.workload_ports(backend, None, at)?;
                }
                let w = self.program.workload(backend)?;
                // The port meant may be one declared with an error.
                if !w.invalid_ports.is_empty() {
                    return None;
                }
                let http: Vec<usize> =
                    w.ports.iter().enumerate().filter(|(_, p)| p.protocol.value.is_http()).map(|(i, _)| i).collect();
                match (http.as_slice(), w.ports.len()) {
                    ([one], _) => *one,
                    (_, 1) => 0,
                    _ => {
                        self.diags.push(
                            Diagnostic::new(
                                codes::UNKNOWN_PORT,
                                format!("which port of `{}`?", at.text),
                                at.span,
                                "port not named",
                            )
                            .with_help(format!("name the port: `route \"{}\" -> {}:PORT`", r.path.value, at.text)),
                        );
                        return None;
                    }
                }
            }
        };
        let mut route =
            Route { path: path?, backend, port, listeners: Vec::new(), hostnames: Vec::new(), span: r.span };
        let mut detached = false;
        if let Some(body) = &r.body {
            let parts = split(&body.stmts, &ROUTE, &mut self.diags);
            let v = self.values;
            if let Some(a) = parts.attrs.get("listeners") {
                for item in self.non_empty_list(a).unwrap_or(&[]) {
                    let Value::Ident(i) = item else {
                        self.diags.push(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                format!("expected a listener name, found {}", item.describe()),
                                item.span(),
                                "not a name",
                            )
                            .with_help("write listener names as words: `listeners = [https]`"),
                        );
                        continue;
                    };
                    let g = self.program.gateway(gid)?;
                    match g.listeners.iter().position(|l| l.name.value == i.text) {
                        Some(ix) => route.listeners.push(Spanned::new(ix, i.span)),
                        // Declared with an error, already reported: the
                        // route is left out, since it cannot be attached.
                        None if g.invalid_listeners.iter().any(|l| l.value == i.text) => detached = true,
                        None => {
                            let mut d = Diagnostic::new(
                                codes::UNKNOWN_PORT,
                                format!("gateway `{}` has no listener `{}`", g.name.value, i.text),
                                i.span,
                                "unknown listener",
                            );
                            if let Some(s) = did_you_mean(&i.text, g.listeners.iter().map(|l| l.name.value.as_str())) {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            }
                            self.diags.push(d);
                        }
                    }
                }
            }
            if let Some(a) = parts.attrs.get("hostnames") {
                for item in self.non_empty_list(a).unwrap_or(&[]) {
                    match v.string(item).and_then(|(s, sp)| typeck::parse_hostname(&s, sp).map(|n| Spanned::new(n, sp)))
                    {
                        Ok(h) => route.hostnames.push(h),
                        Err(d) => self.diags.push(d),
                    }
                }
            }
        }
        (!detached).then_some(route)
    }
}

#[derive(Clone, Copy)]
enum Named {
    Workload(WorkloadId),
    Gateway(GatewayId),
}
