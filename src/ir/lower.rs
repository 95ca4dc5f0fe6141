//! HIR → IR, and the checks that need the lowered view.
//!
//! Lowering sorts every table, spells out identities, derives waypoints and
//! decides each flow's path. The checks here are the Cilium and Istio
//! gotchas of DOMAIN.md that a program can walk into: L7 rules nothing can
//! enforce, DNS patterns Cilium reads differently, peer-only Cilium rules,
//! plaintext clients under STRICT mTLS, contradicting options, and the
//! warnings for over-broad intent.

use super::*;
use crate::diag::{Diagnostic, codes};
use crate::hir::{self, GatewayId, NamespaceId, WorkloadId};
use crate::source::{Origin as SourceOrigin, SourceMap, Span};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// Ports that usually belong to a database or a store.
const DATABASE_PORTS: &[u16] = &[1433, 1521, 2379, 3306, 5432, 5984, 6379, 8086, 9042, 9200, 11211, 26257, 27017];

/// The first Cilium release with `enableDefaultDeny`, which ztp relies on.
const MIN_CILIUM: (u32, u32) = (1, 16);

/// Lowers a checked program. `root` is the program's directory (origins are
/// relative to it); `default_stack` names the stack when the program does
/// not (`cluster { stack = ... }`). Returns the IR when there are no errors.
pub fn lower(p: &hir::Program, sources: &SourceMap, root: &Path, default_stack: &str) -> (Option<Ir>, Vec<Diagnostic>) {
    // Each file's name as origins show it, worked out once per file rather
    // than once per object.
    let shown = sources
        .iter()
        .map(|(_, f)| match &f.origin {
            SourceOrigin::File(path) => {
                let shown = path.strip_prefix(root).unwrap_or(path).display().to_string();
                if shown.is_empty() { f.name.clone() } else { shown }
            }
            _ => f.name.clone(),
        })
        .collect();
    let mut l = Lowerer { p, sources, shown, diags: Vec::new(), ambiguous: BTreeSet::new() };
    let ir = l.run(default_stack);
    let ok = !l.diags.iter().any(Diagnostic::is_error);
    (ok.then_some(ir), l.diags)
}

struct Lowerer<'a> {
    p: &'a hir::Program,
    sources: &'a SourceMap,
    /// Each source's name in origins, by its id.
    shown: Vec<String>,
    diags: Vec<Diagnostic>,
    /// Namespaces whose workloads could not choose among several waypoints.
    ambiguous: BTreeSet<String>,
}

/// HIR ids → IR indices.
struct Index {
    workloads: BTreeMap<WorkloadId, usize>,
    gateways: BTreeMap<GatewayId, usize>,
}

impl Lowerer<'_> {
    fn origin(&self, span: Span) -> Origin {
        let (Some(f), Some(name)) = (self.sources.get(span.source), self.shown.get(span.source.0 as usize)) else {
            return Origin("<unknown>".into());
        };
        let (line, _) = f.line_col(span.lo);
        Origin(format!("{name}:{line}"))
    }

    fn origin_or(&self, span: Option<Span>, default: &str) -> Origin {
        span.map_or_else(|| Origin(format!("default: {default}")), |s| self.origin(s))
    }

    /// How to turn a baseline switch on, depending on whether the baseline
    /// came from `std/baseline` (then it was turned off by the program).
    fn turn_on(&self, option: &str, default_deny: Option<Span>) -> String {
        let from_stdlib = default_deny
            .and_then(|s| self.sources.get(s.source))
            .is_some_and(|f| matches!(f.origin, SourceOrigin::Stdlib(_)));
        if from_stdlib {
            format!("remove `{option} = false`: `std/baseline` turns it on")
        } else {
            format!("set `{option} = true`, or `import \"std/baseline\"`")
        }
    }

    fn ns_name(&self, id: NamespaceId) -> String {
        self.p.namespace(id).map(|n| n.name.value.clone()).unwrap_or_default()
    }

    fn run(&mut self, default_stack: &str) -> Ir {
        let p = self.p;
        let td = p.mesh.trust_domain.value.clone();
        let principal = |ns: &str, sa: &str| format!("{td}/ns/{ns}/sa/{sa}");

        let mesh = Mesh {
            trust_domain: td.clone(),
            mtls: p.mesh.mtls.value,
            mtls_origin: self.origin_or(p.mesh.mtls.span, "mesh.mtls = strict"),
            root_namespace: p.mesh.root_namespace.value.clone(),
        };
        let c = &p.cluster;
        let flag = |s: &hir::Spanned<bool>, what: &str| s.value.then(|| self.origin_or(s.span, what));
        // kube-system (kube-dns) and Istio's root namespace (istiod) are
        // never default-denied, even if the program's list forgets them.
        let mut system_namespaces: Vec<String> = c.system_namespaces.iter().map(|s| s.value.clone()).collect();
        system_namespaces.push("kube-system".into());
        system_namespaces.push(p.mesh.root_namespace.value.clone());
        system_namespaces.sort();
        system_namespaces.dedup();
        let cluster = Cluster {
            cilium: c.cilium_version.value,
            hbone: c.hbone.value,
            hbone_origin: self.origin_or(c.hbone.span, "cluster.hbone = per_flow"),
            system_namespaces,
            allow_dns: flag(&c.allow_dns, "cluster.allow_dns"),
            allow_ambient_probes: flag(&c.allow_ambient_probes, "cluster.allow_ambient_probes"),
            default_deny: flag(&c.default_deny, "cluster.default_deny"),
            deny_egress: c
                .deny_egress
                .iter()
                .map(|d| (d.value, self.origin_or(d.span, "cluster.deny_egress")))
                .collect(),
        };

        let mut namespaces: Vec<Namespace> = p
            .namespaces
            .iter()
            .map(|n| Namespace { name: n.name.value.clone(), origin: self.origin(n.span), span: n.span })
            .collect();
        namespaces.sort_by(|a, b| a.name.cmp(&b.name));

        // Workloads and gateways, sorted by namespace and name.
        let mut wl: Vec<(String, String, WorkloadId)> = Vec::new();
        let mut gw: Vec<(String, String, GatewayId)> = Vec::new();
        for (ni, n) in p.namespaces.iter().enumerate() {
            for (i, w) in n.workloads.iter().enumerate() {
                wl.push((n.name.value.clone(), w.name.value.clone(), WorkloadId { ns: NamespaceId(ni), index: i }));
            }
            for (i, g) in n.gateways.iter().enumerate() {
                gw.push((n.name.value.clone(), g.name.value.clone(), GatewayId { ns: NamespaceId(ni), index: i }));
            }
        }
        wl.sort();
        gw.sort();
        let index = Index {
            workloads: wl.iter().enumerate().map(|(i, (_, _, id))| (*id, i)).collect(),
            gateways: gw.iter().enumerate().map(|(i, (_, _, id))| (*id, i)).collect(),
        };

        let mut workloads: Vec<Workload> = Vec::new();
        for (ns, _, id) in &wl {
            let Some(w) = p.workload(*id) else { continue };
            let mut ports: Vec<Port> = w
                .ports
                .iter()
                .map(|pt| Port { name: pt.name.value.clone(), number: pt.number.value, protocol: pt.protocol.value })
                .collect();
            ports.sort_by_key(|pt| (pt.number, pt.protocol));
            workloads.push(Workload {
                namespace: ns.clone(),
                name: w.name.value.clone(),
                service: w.service.value.clone(),
                service_account: w.service_account.value.clone(),
                principal: principal(ns, &w.service_account.value),
                selector: w.selector.iter().map(|(k, v)| (k.value.clone(), v.value.clone())).collect(),
                ports,
                uses_pod_ips: w.uses_pod_ips.value,
                scrapes_waypoints: w.scrapes_waypoints.value,
                uses_kube_api: w.uses_kube_api.value,
                waypoint: None,
                ingress_use_waypoint: false,
                origin: self.origin(w.span),
                span: w.span,
            });
        }

        let mut gateways: Vec<Gateway> = Vec::new();
        for (ns, _, id) in &gw {
            let Some(g) = p.gateway(*id) else { continue };
            let sa = format!("{}-istio", g.name.value);
            let mut listeners: Vec<Listener> = g
                .listeners
                .iter()
                .map(|l| Listener {
                    name: l.name.value.clone(),
                    port: l.port.value,
                    protocol: l.protocol.value,
                    hostname: l.hostname.as_ref().map(|h| h.value.to_string()),
                    certificate: l.certificate.as_ref().map(|c| c.value.clone()),
                })
                .collect();
            listeners.sort_by(|a, b| (a.port, &a.name).cmp(&(b.port, &b.name)));
            let mut routes = Vec::new();
            for r in &g.routes {
                let Some(&backend) = index.workloads.get(&r.backend) else { continue };
                let Some(port) = p.workload(r.backend).and_then(|w| w.ports.get(r.port)) else { continue };
                let mut listener_names: Vec<String> =
                    r.listeners.iter().filter_map(|i| g.listeners.get(i.value)).map(|l| l.name.value.clone()).collect();
                listener_names.sort();
                listener_names.dedup();
                let mut hostnames: Vec<String> = r.hostnames.iter().map(|h| h.value.to_string()).collect();
                hostnames.sort();
                hostnames.dedup();
                routes.push(Route {
                    path: r.path.value.clone(),
                    backend,
                    port: port.number.value,
                    listeners: listener_names,
                    hostnames,
                    origin: self.origin(r.span),
                    span: r.span,
                });
            }
            routes.sort_by(|a, b| {
                (&a.path, a.backend, a.port, &a.listeners, &a.hostnames).cmp(&(
                    &b.path,
                    b.backend,
                    b.port,
                    &b.listeners,
                    &b.hostnames,
                ))
            });
            gateways.push(Gateway {
                namespace: ns.clone(),
                name: g.name.value.clone(),
                principal: principal(ns, &sa),
                service_account: sa,
                listeners,
                routes,
                origin: self.origin(g.span),
                span: g.span,
            });
        }

        let mut ir = Ir {
            stack: c.stack.as_ref().map_or_else(|| default_stack.to_string(), |s| s.value.clone()),
            mesh,
            cluster,
            namespaces,
            workloads,
            gateways,
            waypoints: Vec::new(),
            flows: Vec::new(),
            expects: Vec::new(),
        };
        self.options(&ir);
        self.waypoints(&mut ir, &index);
        self.identities(&ir, &index);
        self.services_and_names(&ir, &index);
        self.flows(&mut ir, &index);
        self.expects(&mut ir, &index);
        self.routes_have_flows(&ir);
        ir
    }

    // ----------------------------------------------------------- options

    fn options(&mut self, ir: &Ir) {
        let c = &self.p.cluster;
        if ir.cluster.cilium < MIN_CILIUM {
            let (ma, mi) = ir.cluster.cilium;
            let span = c.cilium_version.span;
            if let Some(span) = span {
                self.diags.push(
                    Diagnostic::new(
                        codes::CILIUM_TOO_OLD,
                        format!("Cilium {ma}.{mi} is older than ztp supports"),
                        span,
                        "needs 1.16 or later",
                    )
                    .with_note("ztp's policies rely on `enableDefaultDeny` (Cilium 1.16) so that allow policies never deny by themselves")
                    .with_help("upgrade Cilium to 1.16 or later"),
                );
            }
        }
        if let (true, false) = (c.default_deny.value, c.allow_ambient_probes.value)
            && let Some(span) = c.default_deny.span
        {
            let mut d = Diagnostic::new(
                    codes::CONFLICTING_OPTIONS,
                    "default deny without the ambient probe allow",
                    span,
                    "default deny turned on here",
                )
                .with_note("kubelet probes to ambient pods arrive from 169.254.7.127; under default deny they fail and every pod restarts")
                .with_help(self.turn_on("allow_ambient_probes", c.default_deny.span));
            if let Some(s) = c.allow_ambient_probes.span {
                d = d.with_secondary(s, "turned off here");
            }
            self.diags.push(d);
        }
        if let (true, false, Some(span)) = (c.default_deny.value, c.allow_dns.value, c.default_deny.span) {
            let mut d = Diagnostic::new(
                codes::DENY_WITHOUT_DNS,
                "default deny without the DNS allow",
                span,
                "default deny turned on here",
            )
            .with_note("workloads then resolve only what ztunnel answers itself (Services, ServiceEntries)")
            .with_help(self.turn_on("allow_dns", c.default_deny.span));
            if let Some(s) = c.allow_dns.span {
                d = d.with_secondary(s, "turned off here");
            }
            self.diags.push(d);
        }
        for n in &self.p.namespaces {
            if let Some(sys) = c.system_namespaces.iter().find(|s| s.value == n.name.value) {
                let Some(span) = n.name.span else { continue };
                let mut d = Diagnostic::new(
                    codes::CONFLICTING_OPTIONS,
                    format!("`{}` is a system namespace", n.name.value),
                    span,
                    "declared as a workload namespace",
                )
                .with_note("system namespaces are never enrolled in the mesh and never default-denied")
                .with_help("declare workloads in their own namespaces, or remove it from `system_namespaces`");
                if let Some(s) = sys.span {
                    d = d.with_secondary(s, "listed as a system namespace");
                }
                self.diags.push(d);
            }
        }
    }

    // ---------------------------------------------------------- waypoints

    /// Binds each workload that needs L7 enforcement to a waypoint: the one
    /// it names, the namespace's only declared one, or a derived `waypoint`.
    fn waypoints(&mut self, ir: &mut Ir, index: &Index) {
        // Declared waypoints first, sorted.
        let mut declared: Vec<(String, String, hir::WaypointFor, Span)> = Vec::new();
        for n in &self.p.namespaces {
            for w in &n.waypoints {
                declared.push((n.name.value.clone(), w.name.value.clone(), w.for_.value, w.span));
            }
        }
        declared.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let td = ir.mesh.trust_domain.clone();
        for (ns, name, for_, span) in declared {
            ir.waypoints.push(Waypoint {
                principal: format!("{td}/ns/{ns}/sa/{name}"),
                namespace: ns,
                name,
                for_,
                derived: false,
                origin: self.origin(span),
                span,
            });
        }
        // Which workloads need one: an explicit choice, or an L7 flow.
        let mut needs: BTreeMap<usize, Span> = BTreeMap::new();
        for f in &self.p.flows {
            if let (Some(http), hir::Dest::Workload { id, .. }) = (&f.http, &f.dst.value)
                && let Some(&w) = index.workloads.get(id)
            {
                needs.entry(w).or_insert(http.span);
            }
        }
        for (id, &w) in &index.workloads {
            if let Some(span) = self.p.workload(*id).and_then(|x| x.waypoint.as_ref()).and_then(|x| x.span) {
                needs.entry(w).or_insert(span);
            }
        }
        let mut derived: BTreeMap<String, usize> = BTreeMap::new();
        for (w, why) in needs {
            let Some(workload) = ir.workloads.get(w) else { continue };
            let ns = workload.namespace.clone();
            let hir_id = index.workloads.iter().find(|(_, v)| **v == w).map(|(k, _)| *k);
            let chosen = hir_id.and_then(|id| self.p.workload(id)).and_then(|x| x.waypoint.clone());
            let in_ns: Vec<usize> = ir
                .waypoints
                .iter()
                .enumerate()
                .filter(|(_, x)| x.namespace == ns && !x.derived)
                .map(|(i, _)| i)
                .collect();
            let pick = match chosen {
                Some(c) => ir.waypoints.iter().position(|x| x.namespace == ns && x.name == c.value),
                None => match in_ns.as_slice() {
                    [one] => Some(*one),
                    [] => {
                        let next = ir.waypoints.len();
                        let i = *derived.entry(ns.clone()).or_insert(next);
                        if i == next {
                            if ir.gateways.iter().any(|g| g.namespace == ns && g.name == "waypoint") {
                                self.diags.push(
                                    Diagnostic::new(
                                        codes::WAYPOINT_CHOICE,
                                        format!(
                                            "the waypoint ztp would add to namespace `{ns}` is named like a gateway"
                                        ),
                                        why,
                                        "L7 rules need a waypoint",
                                    )
                                    .with_help("declare the waypoint with another name: `waypoint demo-waypoint {}`"),
                                );
                            }
                            ir.waypoints.push(Waypoint {
                                principal: format!("{td}/ns/{ns}/sa/waypoint"),
                                namespace: ns.clone(),
                                name: "waypoint".into(),
                                for_: hir::WaypointFor::Service,
                                derived: true,
                                origin: self.origin(why),
                                span: why,
                            });
                        }
                        Some(i)
                    }
                    _ => {
                        let names: Vec<String> = in_ns
                            .iter()
                            .filter_map(|i| ir.waypoints.get(*i))
                            .map(|x| format!("`{}`", x.name))
                            .collect();
                        self.ambiguous.insert(ns.clone());
                        self.diags.push(
                            Diagnostic::new(
                                codes::WAYPOINT_CHOICE,
                                format!(
                                    "namespace `{ns}` declares several waypoints; which one fronts `{}`?",
                                    workload.name
                                ),
                                why,
                                "needs a waypoint",
                            )
                            .with_help(format!(
                                "choose one of {} with `waypoint = \"NAME\"` in workload `{}`",
                                names.join(", "),
                                workload.name
                            )),
                        );
                        None
                    }
                },
            };
            if let Some(wp) = pick.and_then(|i| ir.waypoints.get(i))
                && wp.for_ == hir::WaypointFor::Workload
            {
                self.diags.push(
                    Diagnostic::new(
                        codes::WAYPOINT_CHOICE,
                        format!("waypoint `{}` serves only pod-IP traffic (`for = workload`)", wp.name),
                        why,
                        "needs a waypoint for its Service",
                    )
                    .with_note("ztp binds the workload's Service to the waypoint; a `for = workload` waypoint never takes Service traffic, which would then be denied by the narrowed L4 policy")
                    .with_help(format!("declare `waypoint {} {{ for = service }}` (or `all`)", wp.name)),
                );
            }
            if let Some(wp) = ir.workloads.get_mut(w) {
                wp.waypoint = pick;
            }
        }
    }

    /// A waypoint's policy targets a Service, so it cannot tell the Service's
    /// workloads apart; and a waypoint is a Gateway, so it cannot share an
    /// ingress gateway's name.
    fn services_and_names(&mut self, ir: &Ir, index: &Index) {
        let mut by_service: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
        for (i, w) in ir.workloads.iter().enumerate() {
            by_service.entry((w.namespace.as_str(), w.service.as_str())).or_default().push(i);
        }
        for ((ns, svc), ws) in &by_service {
            if ws.len() < 2 || !ws.iter().any(|i| ir.workload(*i).is_some_and(|w| w.waypoint.is_some())) {
                continue;
            }
            let names: Vec<String> =
                ws.iter().filter_map(|i| ir.workload(*i)).map(|w| format!("`{}`", w.name)).collect();
            let Some(span) = ws
                .iter()
                .find_map(|i| index.workloads.iter().find(|(_, v)| *v == i).and_then(|(id, _)| self.p.workload(*id)))
                .map(|w| w.service.span.unwrap_or(w.span))
            else {
                continue;
            };
            self.diags.push(
                Diagnostic::new(
                    codes::SHARED_SERVICE,
                    format!("Service `{ns}/{svc}` fronts {} and has a waypoint", names.join(", ")),
                    span,
                    "shared Service",
                )
                .with_note("a waypoint's policy is attached to the Service: it cannot keep one workload's L7 rules from applying to the others")
                .with_help("give each workload its own Service (`service = \"...\"`), or the same L7 rules"),
            );
        }
        let used: BTreeSet<usize> = ir.workloads.iter().filter_map(|w| w.waypoint).collect();
        for wp in ir.waypoints.iter().enumerate().filter(|(i, w)| used.contains(i) && !w.derived).map(|(_, w)| w) {
            if ir.gateways.iter().any(|g| g.namespace == wp.namespace && g.name == wp.name) {
                self.diags.push(
                    Diagnostic::new(
                        codes::WAYPOINT_CHOICE,
                        format!("waypoint `{}` has the name of a gateway", wp.name),
                        wp.span,
                        "both are Gateway objects",
                    )
                    .with_help("rename the waypoint"),
                );
            }
        }
    }

    /// A workload must not run as a gateway's or waypoint's identity: the
    /// policies that admit those identities would admit it, L7 bypassed.
    fn identities(&mut self, ir: &Ir, index: &Index) {
        let used: BTreeSet<usize> = ir.workloads.iter().filter_map(|w| w.waypoint).collect();
        // Each principal names its first proxy, gateways before waypoints.
        let mut proxies: HashMap<&str, String> = HashMap::new();
        let named = ir.gateways.iter().map(|g| (g.principal.as_str(), format!("gateway `{}`", g.name))).chain(
            ir.waypoints
                .iter()
                .enumerate()
                .filter(|(i, _)| used.contains(i))
                .map(|(_, w)| (w.principal.as_str(), format!("waypoint `{}`", w.name))),
        );
        for (principal, owner) in named {
            proxies.entry(principal).or_insert(owner);
        }
        for (id, &wi) in &index.workloads {
            let (Some(w), Some(hw)) = (ir.workload(wi), self.p.workload(*id)) else { continue };
            let Some(owner) = proxies.get(w.principal.as_str()) else { continue };
            let span = hw.service_account.span.unwrap_or(hw.span);
            self.diags.push(
                Diagnostic::new(
                    codes::PROXY_IDENTITY,
                    format!("workload `{}` would run as the identity of {owner}", w.name),
                    span,
                    format!("service account `{}`", w.service_account),
                )
                .with_note("policies admit that identity to reach workloads behind it; this workload would get the same access and skip their L7 rules")
                .with_help("give the workload its own service account"),
            );
        }
        for (i, wp) in ir.waypoints.iter().enumerate() {
            // Where the choice itself is the error (Z0607), unused is no news.
            if wp.derived || used.contains(&i) || self.ambiguous.contains(&wp.namespace) {
                continue;
            }
            self.diags.push(
                Diagnostic::new(
                    codes::UNUSED_WAYPOINT,
                    format!("waypoint `{}` fronts no workload", wp.name),
                    wp.span,
                    "unused",
                )
                .with_note(
                    "ztp emits a waypoint only for workloads with L7 rules (or that name it with `waypoint = ...`)",
                )
                .with_help("remove it, or add `http` rules to a flow into this namespace"),
            );
        }
    }

    // -------------------------------------------------------------- flows

    fn peer(&self, s: &hir::Source, index: &Index) -> Option<Peer> {
        Some(match s {
            hir::Source::Workload(id) => Peer::Workload(*index.workloads.get(id)?),
            hir::Source::Gateway(id) => Peer::Gateway(*index.gateways.get(id)?),
            hir::Source::Namespace { ns, except } => {
                let mut e: Vec<usize> = except.iter().filter_map(|w| index.workloads.get(w).copied()).collect();
                e.sort();
                e.dedup();
                Peer::Namespace { name: self.ns_name(*ns), except: e }
            }
            hir::Source::World => Peer::World,
            hir::Source::Cidr(set) => Peer::Cidr(cidr_set(set)),
        })
    }

    /// The destination; external destinations without a port are reported
    /// (they would become peer-only Cilium rules).
    /// `checks` is off for `expect`s: the checks judge what a flow allows.
    fn dest(&mut self, d: &hir::Spanned<hir::Dest>, index: &Index, checks: bool) -> Option<Dest> {
        Some(match &d.value {
            hir::Dest::Workload { id, ports } => {
                let w = self.p.workload(*id)?;
                let mut ps: Vec<Port> = ports
                    .iter()
                    .filter_map(|i| w.ports.get(*i))
                    .map(|pt| Port {
                        name: pt.name.value.clone(),
                        number: pt.number.value,
                        protocol: pt.protocol.value,
                    })
                    .collect();
                ps.sort_by_key(|pt| (pt.number, pt.protocol));
                ps.dedup();
                Dest::Workload { workload: *index.workloads.get(id)?, ports: ps }
            }
            hir::Dest::Gateway { id, listeners } => {
                let g = self.p.gateway(*id)?;
                let mut ports: Vec<u16> =
                    listeners.iter().filter_map(|i| g.listeners.get(*i)).map(|l| l.port.value).collect();
                ports.sort();
                ports.dedup();
                Dest::Gateway { gateway: *index.gateways.get(id)?, ports }
            }
            hir::Dest::Fqdn { name, port } => {
                if checks {
                    self.in_cluster_name(name);
                    self.pattern(name);
                }
                match port {
                    Some(p) => Dest::Fqdn { name: name.value.clone(), port: p.value },
                    // An expectation without a port speaks of every port.
                    None if !checks => Dest::Fqdn { name: name.value.clone(), port: 0 },
                    None => {
                        self.no_port(d, &format!("\"{}\"", name.value));
                        return None;
                    }
                }
            }
            hir::Dest::Cidr { set, port } => {
                if checks {
                    self.whole_space(&set.cidr, &set.except);
                    self.denied_egress(d, &set.cidr);
                }
                match port {
                    Some(p) => Dest::Cidr { set: cidr_set(set), port: p.value },
                    None if !checks => Dest::Cidr { set: cidr_set(set), port: 0 },
                    None => {
                        self.no_port(d, &set.cidr.value.to_string());
                        return None;
                    }
                }
            }
        })
    }

    fn no_port(&mut self, d: &hir::Spanned<hir::Dest>, text: &str) {
        if let Some(span) = d.span {
            self.diags.push(
                Diagnostic::new(codes::NO_EXTERNAL_PORT, format!("`{text}` without a port"), span, "every port")
                    .with_note(
                        "Cilium would get a peer-only rule: every port and protocol of the destination, ICMP included",
                    )
                    .with_help(format!("name the port: `{text}:443`; for several ports, write one flow each")),
            );
        }
    }

    /// Kubernetes names resolve to cluster IPs, which `toFQDNs` never
    /// matches: such a flow would be dead.
    fn in_cluster_name(&mut self, name: &hir::Spanned<DnsName>) {
        let n = name.value.as_str();
        let cluster =
            n.ends_with(".svc") || n.contains(".svc.") || n.ends_with(".cluster.local") || n == "cluster.local";
        if let (true, Some(span)) = (cluster, name.span) {
            self.diags.push(
                Diagnostic::new(codes::IN_CLUSTER_NAME, format!("`{n}` is a name inside the cluster"), span, "a Service name")
                    .with_note("ztunnel answers Service names with a VIP, and Cilium's `toFQDNs` never matches in-cluster addresses, so this flow would never work")
                    .with_help("name the workload instead: `allow a -> namespace/workload:port`"),
            );
        }
    }

    /// DNS patterns: what Cilium would read differently, and what is too broad.
    fn pattern(&mut self, name: &hir::Spanned<DnsName>) {
        let (DnsName::Pattern(pat), Some(span)) = (&name.value, name.span) else { return };
        let cilium = self.p.cluster.cilium_version.value;
        if let (Some(base), true) = (pat.strip_prefix("**."), cilium < (1, 19)) {
            let (ma, mi) = cilium;
            let mut d = Diagnostic::new(
                codes::PATTERN_MISREAD,
                format!("`{pat}` needs Cilium 1.19; Cilium {ma}.{mi} reads `**` as `*`"),
                span,
                "one label only on this version",
            )
            .with_note(format!("on Cilium {ma}.{mi} this matches `a.{base}` but not `a.b.{base}`"))
            .with_help(format!(
                "use `\"*.{base}\"` for one level, or set `cilium_version = \"1.19\"` if the cluster runs it"
            ));
            if let Some(s) = self.p.cluster.cilium_version.span {
                d = d.with_secondary(s, "Cilium version set here");
            }
            self.diags.push(d);
        } else if let Some(rest) = pat
            .strip_prefix('*')
            .filter(|r| r.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) && !r.contains('*'))
        {
            // `*-prod.example.com` is an in-label wildcard, read as written;
            // `*github.com` looks like a forgotten dot.
            self.diags.push(
                Diagnostic::new(
                    codes::PATTERN_MISREAD,
                    format!("`{pat}` also matches names that merely end in `{rest}`"),
                    span,
                    "leading `*` without a dot",
                )
                .with_note(format!("Cilium reads a leading `*` as part of the first label: this matches `{rest}` and `evil{rest}`, but not `www.{rest}`"))
                .with_help(format!("for subdomains write `\"*.{rest}\"`; for the name itself write `\"{rest}\"`")),
            );
        }
        // Labels that are not wholly wild (`*github` still names something).
        let fixed: Vec<&str> = pat.split('.').filter(|l| !l.chars().all(|c| c == '*')).collect();
        if pat.chars().all(|c| c == '*' || c == '.') || fixed.len() < 2 {
            self.diags.push(
                Diagnostic::new(
                    codes::MATCH_ALL_PATTERN,
                    format!("`{pat}` matches a whole top-level domain or every name"),
                    span,
                    "very broad",
                )
                .with_help("name the service's own domain, e.g. `\"*.github.com\"`"),
            );
        }
    }

    /// Egress the cluster denies (`deny_egress`) beats every allow: a flow
    /// entirely inside a denied range can never work. (A wider flow is
    /// fine: the deny carves its range out, which is what it is for.)
    fn denied_egress(&mut self, d: &hir::Spanned<hir::Dest>, cidr: &hir::Spanned<Cidr>) {
        let c = &self.p.cluster;
        let Some(deny) = c.deny_egress.iter().find(|x| x.value.contains(&cidr.value)) else {
            return;
        };
        let Some(span) = d.span else { return };
        let mut diag = Diagnostic::new(
            codes::CONFLICTING_OPTIONS,
            format!("`{}` lies inside `{}`, which the cluster denies", cidr.value, deny.value),
            span,
            "allowed here",
        )
        .with_note("a Cilium deny beats every allow, so this flow cannot reach the denied addresses")
        .with_help("remove the flow, or the range from `cluster { deny_egress }`");
        if let Some(s) = deny.span {
            diag = diag.with_secondary(s, "denied here");
        }
        self.diags.push(diag);
    }

    fn whole_space(&mut self, cidr: &hir::Spanned<Cidr>, except: &[hir::Spanned<Cidr>]) {
        if cidr.value.prefix == 0
            && except.is_empty()
            && let Some(span) = cidr.span
        {
            let private = if cidr.value.addr.is_ipv4() {
                "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16"
            } else {
                "fc00::/7, fe80::/10"
            };
            self.diags.push(
                Diagnostic::new(
                    codes::WHOLE_ADDRESS_SPACE,
                    format!("`{}` is every address", cidr.value),
                    span,
                    "everything",
                )
                .with_help(format!(
                    "add `except [{private}]` to keep private ranges out, or name the networks you need"
                )),
            );
        }
    }

    fn flows(&mut self, ir: &mut Ir, index: &Index) {
        let mut flows = Vec::new();
        for f in &self.p.flows {
            if let hir::Source::Cidr(set) = &f.src.value {
                self.whole_space(&set.cidr, &set.except);
            }
            let (Some(src), Some(dst)) = (self.peer(&f.src.value, index), self.dest(&f.dst, index, true)) else {
                continue;
            };
            let via = self.via(ir, &src, &dst);
            if let (Peer::Cidr(_), Dest::Workload { workload, .. }) = (&src, &dst)
                && let Some(w) = ir.workload(*workload).filter(|w| w.waypoint.is_some())
                && ir.mesh.mtls == MtlsMode::Permissive
                // With its own `http` block, Z0601 says it better.
                && f.http.is_none()
                && let Some(span) = f.src.span
            {
                self.diags.push(
                    Diagnostic::new(
                        codes::NO_MESH_IDENTITY,
                        format!("clients from a CIDR would reach `{}/{}` around its waypoint", w.namespace, w.name),
                        span,
                        "no mesh identity",
                    )
                    .with_note("traffic from outside the mesh never passes a waypoint, so ztunnel would have to admit it directly, on the very ports the waypoint guards")
                    .with_help("bring the traffic in through a gateway, whose flows pass the waypoint"),
                );
            }
            if let (Peer::Cidr(_), Dest::Workload { workload, .. }, MtlsMode::Strict) = (&src, &dst, ir.mesh.mtls) {
                let name = ir.workload(*workload).map(|w| format!("{}/{}", w.namespace, w.name)).unwrap_or_default();
                if let Some(span) = f.src.span {
                    self.diags.push(
                        Diagnostic::new(
                            codes::NO_MESH_IDENTITY,
                            format!("clients from a CIDR cannot reach `{name}` under STRICT mTLS"),
                            span,
                            "no mesh identity",
                        )
                        .with_note("ztunnel rejects connections without a mesh certificate when mTLS is STRICT")
                        .with_help("bring the traffic in through a gateway (`allow <cidr> -> <gateway>:<listener>`), or set `mtls = permissive`"),
                    );
                }
            }
            if let (Peer::Namespace { .. }, Dest::Workload { workload, ports }) = (&src, &dst)
                && let Some(db) = ports.iter().find(|p| DATABASE_PORTS.contains(&p.number))
            {
                let name = ir.workload(*workload).map(|w| w.name.clone()).unwrap_or_default();
                if let Some(span) = f.src.span {
                    self.diags.push(
                        Diagnostic::new(
                            codes::NAMESPACE_TO_DATABASE,
                            format!("every workload of the namespace may reach `{name}` on port {}", db.number),
                            span,
                            "a whole namespace",
                        )
                        .with_help("allow only the workloads that need the database, one flow each"),
                    );
                }
            }
            let http = f.http.as_ref().map(http_of);
            if let (Some(h), None) = (&f.http, via) {
                self.l7_without_waypoint(ir, &src, &dst, h.span);
            }
            // Pods of a `namespace(x)` source that dial pod IPs never pass
            // the waypoint: they get their own, direct flow (the namespace's
            // flow through the waypoint is their Service path).
            if let (Peer::Namespace { name, except }, Some(_)) = (&src, via) {
                for (wi, w) in ir.workloads.iter().enumerate() {
                    if w.namespace != *name || !w.uses_pod_ips || except.contains(&wi) {
                        continue;
                    }
                    if let Some(h) = &f.http {
                        self.diags.push(
                            Diagnostic::new(codes::L7_WITHOUT_WAYPOINT, "no waypoint can enforce these `http` rules for every source", h.span, "L7 rules")
                                .with_note(format!("`{}/{}` is part of the source and connects to pod IPs (`uses_pod_ips = true`), which never pass a service waypoint", w.namespace, w.name))
                                .with_help(format!("leave it out: `namespace({name}) except {}`, and give it an L4 flow of its own", w.name)),
                        );
                    }
                    flows.push(Flow {
                        src: Peer::Workload(wi),
                        dst: dst.clone(),
                        http: None,
                        via: None,
                        origin: self.origin(f.span),
                        span: f.span,
                    });
                }
            }
            // A client that dials pod IPs may also use the Service (a
            // Prometheus with PodMonitors and ServiceMonitors): an L4 flow
            // from it toward a waypoint-fronted workload gets the Service's
            // path through the waypoint too. With `http` rules it has none
            // (Z0601 above): L7 rules are never left to a path around them.
            if let Some(wp) = self.service_path(ir, &src, &dst)
                && http.is_none()
            {
                flows.push(Flow {
                    src: src.clone(),
                    dst: dst.clone(),
                    http: None,
                    via: Some(wp),
                    origin: self.origin(f.span),
                    span: f.span,
                });
            }
            flows.push(Flow { src, dst, http, via, origin: self.origin(f.span), span: f.span });
        }
        flows.sort();
        flows.dedup_by(|a, b| a.src == b.src && a.dst == b.dst && a.http == b.http && a.via == b.via);
        // Ingress traffic to a waypoint-fronted workload goes through the
        // waypoint too (ztp's choice: L7 intent holds against the gateway).
        // A gateway reaches a workload by a flow of its own, or as part of a
        // `namespace(x)` source, to follow one of its routes.
        let mut from_gateways: BTreeSet<usize> = BTreeSet::new();
        for f in &flows {
            if let (Peer::Gateway(_), Dest::Workload { workload, .. }, Some(_)) = (&f.src, &f.dst, f.via) {
                from_gateways.insert(*workload);
            }
        }
        for g in &ir.gateways {
            from_gateways.extend(g.routes.iter().map(|r| r.backend));
        }
        for w in from_gateways {
            if let Some(w) = ir.workloads.get_mut(w)
                && w.waypoint.is_some()
            {
                w.ingress_use_waypoint = true;
            }
        }
        ir.flows = flows;
    }

    /// The waypoint a flow passes: its destination's, unless the client
    /// dials pod IPs (whose Service path is [`Self::service_path`]) or has
    /// no mesh identity.
    fn via(&self, ir: &Ir, src: &Peer, dst: &Dest) -> Option<usize> {
        let Dest::Workload { workload, .. } = dst else { return None };
        let wp = ir.workload(*workload)?.waypoint?;
        match src {
            Peer::Workload(w) if ir.workload(*w).is_some_and(|x| x.uses_pod_ips) => None,
            Peer::Workload(_) | Peer::Gateway(_) | Peer::Namespace { .. } => Some(wp),
            Peer::World | Peer::Cidr(_) => None,
        }
    }

    /// The waypoint on the Service path of a client that dials pod IPs: its
    /// direct flow is the one [`Self::via`] decides; this is the other.
    fn service_path(&self, ir: &Ir, src: &Peer, dst: &Dest) -> Option<usize> {
        let (Peer::Workload(w), Dest::Workload { workload, .. }) = (src, dst) else { return None };
        if !ir.workload(*w)?.uses_pod_ips {
            return None;
        }
        ir.workload(*workload)?.waypoint
    }

    fn l7_without_waypoint(&mut self, ir: &Ir, src: &Peer, dst: &Dest, span: Span) {
        let general = "drop the `http` block (the flow stays L4), or change the path of the traffic".to_string();
        let (why, help) = match (src, dst) {
            (_, Dest::Gateway { .. }) => (
                "traffic into an ingress gateway passes no waypoint; route by path with the gateway's `route`s instead"
                    .to_string(),
                general,
            ),
            // Both paths for an L7 flow would leave one around its rules.
            (Peer::Workload(w), _) if ir.workload(*w).is_some_and(|x| x.uses_pod_ips) => {
                let name = ir.workload(*w).map(|x| x.name.clone()).unwrap_or_default();
                (
                    format!(
                        "`{name}` connects to pod IPs (`uses_pod_ips = true`), which never pass a service waypoint, and L7 rules must not have a path around it"
                    ),
                    format!(
                        "drop the `http` block: as an L4 flow it is admitted both to the pod IPs and through the waypoint; or, if `{name}` only uses the Service, drop `uses_pod_ips`"
                    ),
                )
            }
            (Peer::World | Peer::Cidr(_), _) => ("clients outside the mesh never pass a waypoint".to_string(), general),
            // Egress has its own error (Z0404); nothing else lacks a waypoint.
            _ => return,
        };
        self.diags.push(
            Diagnostic::new(codes::L7_WITHOUT_WAYPOINT, "no waypoint can enforce these `http` rules", span, "L7 rules")
                .with_note(why)
                .with_help(help),
        );
    }

    fn expects(&mut self, ir: &mut Ir, index: &Index) {
        for e in &self.p.expects {
            let Some(src) = self.peer(&e.src.value, index) else { continue };
            let Some(dst) = self.dest(&e.dst, index, false) else { continue };
            let http = e.http.as_ref().map(http_of);
            ir.expects.push(Expect { verdict: e.verdict, src, dst, http, origin: self.origin(e.span), span: e.span });
        }
    }

    /// A route sends traffic from its gateway to a workload port; a flow must
    /// allow that, or the route is dead on arrival.
    fn routes_have_flows(&mut self, ir: &Ir) {
        let allowed: BTreeSet<(usize, usize, u16)> = ir
            .flows
            .iter()
            .filter_map(|f| match (&f.src, &f.dst) {
                (Peer::Gateway(g), Dest::Workload { workload, ports }) => Some((g, workload, ports)),
                _ => None,
            })
            .flat_map(|(g, w, ports)| ports.iter().map(move |p| (*g, *w, p.number)))
            .collect();
        // `namespace(x)` covers the gateways of x too (only workloads can be
        // excepted), on the flow's ports.
        let namespace_allowed = |g: &Gateway, w: usize, port: u16| {
            ir.flows.iter().any(|f| {
                matches!((&f.src, &f.dst), (Peer::Namespace { name, .. }, Dest::Workload { workload, ports })
                    if *workload == w && *name == g.namespace && ports.iter().any(|p| p.number == port))
            })
        };
        for (gi, g) in ir.gateways.iter().enumerate() {
            for r in &g.routes {
                if allowed.contains(&(gi, r.backend, r.port)) || namespace_allowed(g, r.backend, r.port) {
                    continue;
                }
                let Some(w) = ir.workload(r.backend) else { continue };
                let span = r.span;
                self.diags.push(
                    Diagnostic::new(
                        codes::ROUTE_WITHOUT_FLOW,
                        format!("route to `{}:{}` that no flow allows", w.name, r.port),
                        span,
                        "the gateway would forward here",
                    )
                    .with_note("without a flow, every layer denies the gateway's requests to the backend")
                    .with_help(if g.namespace == w.namespace {
                        format!("add `allow {} -> {}:{}`", g.name, w.name, r.port)
                    } else {
                        format!("add `allow {}/{} -> {}/{}:{}`", g.namespace, g.name, w.namespace, w.name, r.port)
                    }),
                );
            }
        }
    }
}

fn cidr_set(set: &hir::CidrSet) -> CidrSet {
    let mut except: Vec<Cidr> = set.except.iter().map(|c| c.value).collect();
    except.sort();
    except.dedup();
    CidrSet { cidr: set.cidr.value, except }
}

/// A checked `http` block as the IR keeps it: methods and paths sorted and
/// deduplicated.
fn http_of(h: &hir::HttpMatch) -> Http {
    let mut methods: Vec<_> = h.methods.iter().map(|x| x.value).collect();
    methods.sort();
    methods.dedup();
    let mut paths: Vec<String> = h.paths.iter().map(|x| x.value.clone()).collect();
    paths.sort();
    paths.dedup();
    Http { methods, paths, headers: h.headers.iter().map(|(k, v)| (k.value.clone(), v.value.clone())).collect() }
}
