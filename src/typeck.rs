//! The rules that need the whole program, run over the finished HIR by
//! [`check`]: `http` rules on ports that do not speak HTTP, `world` toward
//! anything but a gateway, `except` ranges outside their CIDR, duplicate port
//! numbers, routes to non-HTTP ports, route hostnames no listener accepts,
//! duplicate flows, workloads whose selectors overlap. The values they
//! relate were parsed and validated by [`crate::value`].

use crate::diag::{Diagnostic, codes};
use crate::hir::*;
use crate::source::Span;
use crate::value::hostnames_intersect;
use std::collections::{BTreeMap, BTreeSet};

/// The rules that need the whole resolved program.
pub fn check(p: &Program) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for ns in &p.namespaces {
        overlapping_selectors(ns, &mut out);
        for w in &ns.workloads {
            // TCP and UDP may share a number (DNS does); nothing else may.
            let ports = w.ports.iter().map(|port| {
                let udp = port.protocol.value == Protocol::Udp;
                ((port.number.value, udp), &port.number, &port.name.value)
            });
            duplicate_numbers(ports, "port", "give each port its own number, or merge the two ports", &mut out);
        }
        for g in &ns.gateways {
            // Listeners may share a port when their hostnames differ.
            let listeners = g
                .listeners
                .iter()
                .map(|l| ((l.port.value, l.hostname.as_ref().map(|h| h.value.to_string())), &l.port, &l.name.value));
            duplicate_numbers(listeners, "listener port", "listeners on one port need different `hostname`s", &mut out);
            listener_protocols(g, &mut out);
            for r in &g.routes {
                route_protocol(p, r, &mut out);
                route_hostnames(g, r, &mut out);
            }
        }
    }
    let mut seen: BTreeMap<String, Span> = BTreeMap::new();
    let mut flows: Vec<&Flow> = p.flows.iter().collect();
    flows.sort_by_key(|f| (f.span.source, f.span.lo));
    for f in flows {
        world_source(p, &f.src, &f.dst, &mut out);
        except_inside(&f.src.value, &f.dst.value, &mut out);
        if let Some(http) = &f.http {
            http_rules(p, http, &f.dst, &mut out);
        }
        self_flow(f, &mut out);
        let key =
            format!("{}|{}|{:?}", source_key(&f.src.value), dest_key(&f.dst.value), f.http.as_ref().map(http_key));
        if let Some(first) = seen.get(&key) {
            out.push(
                Diagnostic::new(codes::DUPLICATE_FLOW, "this flow is declared twice", f.span, "declared again here")
                    .with_secondary(*first, "first declared here")
                    .with_help("remove one of them"),
            );
        } else {
            seen.insert(key, f.span);
        }
    }
    for e in &p.expects {
        except_inside(&e.src.value, &e.dst.value, &mut out);
        if let Some(http) = &e.http {
            http_rules(p, http, &e.dst, &mut out);
        }
    }
    out
}

/// A selector label as written in `.ztp`: `app = "api"`, with keys that
/// are not plain names quoted.
fn label_text(key: &str, value: &str) -> String {
    let plain = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain { format!("{key} = \"{value}\"") } else { format!("\"{key}\" = \"{value}\"") }
}

/// Two workloads of a namespace whose selectors are equal, or where one's
/// labels are a subset of the other's: the policies of the broader one (Cilium
/// and ztunnel select pods by these labels) apply to the other's pods too.
/// Each workload is filed under its rarest label, so a workload is compared
/// only with those that could be a subset of it, not with every other.
fn overlapping_selectors(ns: &Namespace, out: &mut Vec<Diagnostic>) {
    type Labels<'a> = BTreeSet<(&'a str, &'a str)>;
    let sets: Vec<Labels<'_>> = ns
        .workloads
        .iter()
        .map(|w| w.selector.iter().map(|(k, v)| (k.value.as_str(), v.value.as_str())).collect())
        .collect();
    let mut count: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for l in sets.iter().flatten() {
        *count.entry(*l).or_default() += 1;
    }
    let mut by_rarest: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    let mut first_with: BTreeMap<&Labels<'_>, usize> = BTreeMap::new();
    for (i, s) in sets.iter().enumerate() {
        // An empty selector is an error of its own (Z0424).
        if let Some(rarest) = s.iter().min_by_key(|l| (count.get(*l).copied().unwrap_or(0), **l)) {
            by_rarest.entry(*rarest).or_default().push(i);
            first_with.entry(s).or_insert(i);
        }
    }
    let at = |w: &Workload| w.selector_span.or(w.name.span).unwrap_or(w.span);
    let by_default = |w: &Workload| match (w.selector_span, w.selector.first()) {
        (None, Some((k, v))) => format!(" (by default, `{}`)", label_text(&k.value, &v.value)),
        _ => String::new(),
    };
    for (b, sb) in sets.iter().enumerate() {
        let Some(wb) = ns.workloads.get(b) else { continue };
        let mut candidates: BTreeSet<usize> = BTreeSet::new();
        for l in sb {
            candidates.extend(by_rarest.get(l).into_iter().flatten().copied().filter(|a| *a != b));
        }
        for a in candidates {
            let (Some(sa), Some(wa)) = (sets.get(a), ns.workloads.get(a)) else { continue };
            if !sa.is_subset(sb) {
                continue;
            }
            let shared: Vec<String> = sa.iter().map(|(k, v)| label_text(k, v)).collect();
            let shared = shared.join(", ");
            let d = if sa.len() == sb.len() {
                // Equal selectors: each later workload against the first.
                if first_with.get(sb) != Some(&a) {
                    continue;
                }
                Diagnostic::new(
                    codes::OVERLAPPING_SELECTORS,
                    format!("workloads `{}` and `{}` select the same pods", wa.name.value, wb.name.value),
                    at(wb),
                    format!("the same labels as `{}`", wa.name.value),
                )
                .with_secondary(at(wa), format!("`{}` selects these pods{}", wa.name.value, by_default(wa)))
                .with_note(format!(
                    "Cilium and ztunnel select pods by their labels, here `{shared}`, so every policy of either workload applies to the pods of both"
                ))
                .with_help("give each workload a label that the other's pods do not carry")
            } else {
                Diagnostic::new(
                    codes::OVERLAPPING_SELECTORS,
                    format!("the selector of `{}` also selects the pods of `{}`", wa.name.value, wb.name.value),
                    at(wa),
                    format!("selects `{}`'s pods too{}", wb.name.value, by_default(wa)),
                )
                .with_secondary(at(wb), format!("`{}`'s pods carry these labels too", wb.name.value))
                .with_note(format!(
                    "every pod of `{}` carries `{shared}`, the whole selector of `{}`, so every policy of `{}` applies to it as well",
                    wb.name.value, wa.name.value, wa.name.value
                ))
                .with_help(format!(
                    "add a label to `{}`'s selector that `{}`'s pods do not carry",
                    wa.name.value, wb.name.value
                ))
            };
            out.push(d);
        }
    }
}

fn http_key(h: &HttpMatch) -> String {
    let methods: Vec<_> = h.methods.iter().map(|m| m.value).collect();
    let paths: Vec<_> = h.paths.iter().map(|m| &m.value).collect();
    let headers: Vec<_> = h.headers.iter().map(|(k, v)| (&k.value, &v.value)).collect();
    format!("{methods:?}{paths:?}{headers:?}")
}

/// What a flow means, without spans: two flows with the same key are one.
fn source_key(s: &Source) -> String {
    match s {
        Source::Workload(w) => format!("{w:?}"),
        Source::Gateway(g) => format!("{g:?}"),
        Source::Namespace { ns, except } => {
            let mut e = except.clone();
            e.sort();
            format!("{ns:?}-{e:?}")
        }
        Source::World => "world".into(),
        Source::Cidr(set) => cidr_key(set),
    }
}

fn dest_key(d: &Dest) -> String {
    match d {
        Dest::Workload { id, ports } => {
            let mut p = ports.clone();
            p.sort();
            format!("{id:?}{p:?}")
        }
        Dest::Gateway { id, listeners } => {
            let mut l = listeners.clone();
            l.sort();
            format!("{id:?}{l:?}")
        }
        Dest::Fqdn { name, port } => format!("{}:{:?}", name.value, port.as_ref().map(|p| p.value)),
        Dest::Cidr { set, port } => format!("{}:{:?}", cidr_key(set), port.as_ref().map(|p| p.value)),
    }
}

fn cidr_key(set: &CidrSet) -> String {
    let mut e: Vec<String> = set.except.iter().map(|c| c.value.to_string()).collect();
    e.sort();
    format!("{}-{e:?}", set.cidr.value)
}

fn duplicate_numbers<'a, K: Ord>(
    items: impl Iterator<Item = (K, &'a Spanned<u16>, &'a String)>,
    what: &str,
    help: &str,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen: BTreeMap<K, (&'a Spanned<u16>, &'a String)> = BTreeMap::new();
    for (key, num, name) in items {
        if let Some((first, first_name)) = seen.get(&key) {
            if let (Some(span), Some(first_span)) = (num.span, first.span) {
                out.push(
                    Diagnostic::new(
                        codes::DUPLICATE_PORT_NUMBER,
                        format!("{what} {} is used by both `{first_name}` and `{name}`", num.value),
                        span,
                        "used again here",
                    )
                    .with_secondary(first_span, "first used here")
                    .with_help(help.to_string()),
                );
            }
        } else {
            seen.insert(key, (num, name));
        }
    }
}

/// Listeners that share a port must share a protocol (Gateway API reports a
/// `ProtocolConflict` otherwise).
fn listener_protocols(g: &Gateway, out: &mut Vec<Diagnostic>) {
    let mut first: BTreeMap<u16, &Listener> = BTreeMap::new();
    for l in &g.listeners {
        match first.get(&l.port.value) {
            Some(f) if f.protocol.value != l.protocol.value => {
                if let (Some(s), Some(fs)) = (l.port.span, f.port.span) {
                    out.push(
                        Diagnostic::new(
                            codes::DUPLICATE_PORT_NUMBER,
                            format!(
                                "listeners `{}` and `{}` share port {} with different protocols",
                                f.name.value, l.name.value, l.port.value
                            ),
                            s,
                            "used again here",
                        )
                        .with_secondary(fs, "first used here")
                        .with_help("listeners on one port must all be `http` or all be `https`"),
                    );
                }
            }
            Some(_) => {}
            None => {
                first.insert(l.port.value, l);
            }
        }
    }
}

fn route_protocol(p: &Program, r: &Route, out: &mut Vec<Diagnostic>) {
    let Some(port) = p.workload(r.backend).and_then(|w| w.ports.get(r.port)) else { return };
    if !port.protocol.value.is_http() {
        let mut d = Diagnostic::new(
            codes::ROUTE_TO_NON_HTTP,
            format!("route to port `{}`, which speaks {}", port.name.value, port.protocol.value.as_str()),
            r.span,
            "HTTP route",
        )
        .with_help("routes forward HTTP; declare the port with `protocol = http` (or `grpc`) if it speaks HTTP");
        if let Some(s) = port.protocol.span {
            d = d.with_secondary(s, "declared here");
        }
        out.push(d);
    }
}

/// A route with `hostnames` attaches only to listeners whose `hostname`
/// intersects one of them (a listener without one accepts any); Gateway API
/// drops a route that no listener accepts (`Accepted: False`,
/// `NoMatchingListenerHostname`), so its traffic is never routed.
fn route_hostnames(g: &Gateway, r: &Route, out: &mut Vec<Diagnostic>) {
    let (Some(first), Some(last)) = (r.hostnames.first(), r.hostnames.last()) else { return };
    let listeners: Vec<&Listener> = if r.listeners.is_empty() {
        g.listeners.iter().collect()
    } else {
        r.listeners.iter().filter_map(|i| g.listeners.get(i.value)).collect()
    };
    let accepts = |l: &Listener| match &l.hostname {
        None => true,
        Some(h) => r.hostnames.iter().any(|rh| hostnames_intersect(&h.value, &rh.value)),
    };
    if listeners.is_empty() || listeners.iter().any(|l| accepts(l)) {
        return;
    }
    let (Some(lo), Some(hi)) = (first.span, last.span) else { return };
    let message = if r.listeners.is_empty() {
        format!("no listener of gateway `{}` accepts this route's hostnames", g.name.value)
    } else {
        "none of the listeners this route names accepts its hostnames".to_string()
    };
    let mut d = Diagnostic::new(
        codes::ROUTE_HOSTNAME,
        message,
        lo.to(hi),
        if r.hostnames.len() == 1 { "matches no listener" } else { "none matches a listener" },
    )
    .with_note("Gateway API attaches a route only to listeners whose `hostname` matches one of the route's (`*.example.com` matches the names under `example.com`, not `example.com` itself); a route no listener accepts is dropped and its requests are never routed");
    for l in &listeners {
        if let Some(h) = &l.hostname
            && let Some(s) = h.span
        {
            d = d.with_secondary(s, format!("listener `{}` accepts only `{}`", l.name.value, h.value));
        }
    }
    let example = listeners
        .iter()
        .filter_map(|l| l.hostname.as_ref())
        .map(|h| h.value.as_str().strip_prefix("*.").map_or_else(|| h.value.to_string(), |base| format!("www.{base}")))
        .next()
        .unwrap_or_default();
    out.push(d.with_help(format!(
        "name a host the listener serves, such as `\"{example}\"`, or remove `hostnames` so the route takes the listener's"
    )));
}

fn world_source(p: &Program, src: &Spanned<Source>, dst: &Spanned<Dest>, out: &mut Vec<Diagnostic>) {
    if src.value != Source::World || matches!(dst.value, Dest::Gateway { .. }) {
        return;
    }
    let (Some(s), Some(d)) = (src.span, dst.span) else { return };
    let (target, help) = match &dst.value {
        Dest::Workload { id, .. } => (
            format!("workload `{}`", p.workload_path(*id)),
            "declare a `gateway` with a listener and a `route` to this workload, then `allow world -> <gateway>`",
        ),
        Dest::Fqdn { .. } | Dest::Cidr { .. } => (
            "an external destination".into(),
            "`world` is already outside the cluster: flows from it enter through a gateway listener",
        ),
        Dest::Gateway { .. } => return,
    };
    out.push(
        Diagnostic::new(
            codes::WORLD_TO_NON_GATEWAY,
            format!("`world` cannot reach {target} directly"),
            s,
            "traffic from outside the cluster",
        )
        .with_secondary(d, "not a gateway")
        .with_help(help),
    );
}

fn except_inside(src: &Source, dst: &Dest, out: &mut Vec<Diagnostic>) {
    let sets = [
        match src {
            Source::Cidr(s) => Some(s),
            _ => None,
        },
        match dst {
            Dest::Cidr { set, .. } => Some(set),
            _ => None,
        },
    ];
    for set in sets.into_iter().flatten() {
        for e in &set.except {
            if e.value == set.cidr.value
                && let (Some(es), Some(cs)) = (e.span, set.cidr.span)
            {
                out.push(
                    Diagnostic::new(
                        codes::EXCEPT_OUTSIDE,
                        format!("`except {}` leaves nothing of `{}`", e.value, set.cidr.value),
                        es,
                        "the whole block",
                    )
                    .with_secondary(cs, "the block")
                    .with_help("an `except` range must be a part of the block, not all of it"),
                );
            } else if !set.cidr.value.contains(&e.value)
                && let (Some(es), Some(cs)) = (e.span, set.cidr.span)
            {
                out.push(
                    Diagnostic::new(
                        codes::EXCEPT_OUTSIDE,
                        format!("`{}` is not inside `{}`", e.value, set.cidr.value),
                        es,
                        "outside the block",
                    )
                    .with_secondary(cs, "the block it should narrow")
                    .with_help("an `except` range must lie inside the CIDR it narrows; remove it or fix the range"),
                );
            }
        }
    }
}

fn http_rules(p: &Program, http: &HttpMatch, dst: &Spanned<Dest>, out: &mut Vec<Diagnostic>) {
    match &dst.value {
        Dest::Workload { id, ports } => {
            let Some(w) = p.workload(*id) else { return };
            for port in ports.iter().filter_map(|i| w.ports.get(*i)) {
                if port.protocol.value.is_http() {
                    continue;
                }
                let mut d = Diagnostic::new(
                    codes::HTTP_ON_NON_HTTP,
                    format!(
                        "`http` rules on port `{}` of `{}`, which speaks {}",
                        port.name.value,
                        p.workload_path(*id),
                        port.protocol.value.as_str()
                    ),
                    http.span,
                    "HTTP rules",
                )
                .with_help("HTTP rules need a port declared with `protocol = http` or `grpc`; name such a port in the flow, or drop the `http` block");
                if let Some(s) = port.protocol.span.or(Some(port.span)) {
                    d = d.with_secondary(s, format!("port `{}` is {}", port.name.value, port.protocol.value.as_str()));
                }
                out.push(d);
            }
        }
        Dest::Fqdn { .. } | Dest::Cidr { .. } => {
            let mut d = Diagnostic::new(
                codes::HTTP_ON_NON_HTTP,
                "`http` rules on traffic leaving the cluster",
                http.span,
                "HTTP rules",
            )
            .with_help("egress to external names and CIDRs is filtered at L3/L4 only; Cilium L7 rules break ambient pods, so drop the `http` block");
            if let Some(s) = dst.span {
                d = d.with_secondary(s, "external destination");
            }
            out.push(d);
        }
        Dest::Gateway { .. } => {}
    }
}

fn self_flow(f: &Flow, out: &mut Vec<Diagnostic>) {
    if let (Source::Workload(a), Dest::Workload { id: b, .. }) = (&f.src.value, &f.dst.value)
        && a == b
    {
        out.push(
                Diagnostic::new(codes::SELF_FLOW, "flow from a workload to itself", f.span, "source and destination are the same")
                    .with_help("a pod reaching its own port needs no policy; if other replicas must talk to each other, keep this flow"),
            );
    }
}
