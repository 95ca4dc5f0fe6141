//! `ztp explain`'s question, read against the program: a source
//! (`world`, `ns/name` or a name unique in the program, `namespace(x)`, a
//! CIDR) and a destination (a workload or gateway with an optional port by
//! name or number, a DNS name or a CIDR with a port), as the IR's peer and
//! destination.

use crate::ir::{CidrSet, Dest, Ir, Peer, Port};
use crate::source::Span;
use crate::value::{parse_cidr, parse_dns_name};

fn find<'a, T>(
    items: &'a [T],
    text: &str,
    ns_of: impl Fn(&T) -> &str,
    name_of: impl Fn(&T) -> &str,
) -> Vec<(usize, &'a T)> {
    let (ns, name) = match text.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, text),
    };
    items.iter().enumerate().filter(|(_, x)| name_of(x) == name && ns.is_none_or(|n| ns_of(x) == n)).collect()
}

enum Named {
    Workload(usize),
    Gateway(usize),
}

fn named(ir: &Ir, text: &str) -> Result<Named, String> {
    let ws = find(&ir.workloads, text, |w| &w.namespace, |w| &w.name);
    let gs = find(&ir.gateways, text, |g| &g.namespace, |g| &g.name);
    match (ws.as_slice(), gs.as_slice()) {
        ([(i, _)], []) => Ok(Named::Workload(*i)),
        ([], [(i, _)]) => Ok(Named::Gateway(*i)),
        ([], []) => Err(format!("the program has no workload or gateway `{text}`")),
        _ => Err(format!("`{text}` names several workloads or gateways: write it as `namespace/name`")),
    }
}

/// Reads a source.
pub fn source(ir: &Ir, text: &str) -> Result<Peer, String> {
    let text = text.trim();
    if text == "world" {
        return Ok(Peer::World);
    }
    if let Some(ns) = text.strip_prefix("namespace(").and_then(|r| r.strip_suffix(')')) {
        return Ok(Peer::Namespace { name: ns.to_string(), except: Vec::new() });
    }
    if text.contains('/') && text.chars().next().is_some_and(|c| c.is_ascii_digit() || c == ':') {
        let cidr = parse_cidr(text, Span::default()).map_err(|d| d.message)?;
        return Ok(Peer::Cidr(CidrSet { cidr, except: Vec::new() }));
    }
    match named(ir, text)? {
        Named::Workload(i) => Ok(Peer::Workload(i)),
        Named::Gateway(i) => Ok(Peer::Gateway(i)),
    }
}

/// Reads a destination.
pub fn destination(ir: &Ir, text: &str) -> Result<Dest, String> {
    let text = text.trim();
    let (target, port) = match text.rsplit_once(':') {
        // An IPv6 CIDR has colons of its own; its port follows the prefix.
        Some((t, p)) if !p.contains('/') && !p.contains(']') => (t, Some(p)),
        _ => (text, None),
    };
    let quoted = target.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
    let number = |p: Option<&str>| -> Result<u16, String> {
        let p = p.ok_or_else(|| format!("`{text}` needs a port"))?;
        p.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| format!("`{p}` is not a port number"))
    };
    if target.contains('/') && target.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        let cidr = parse_cidr(target, Span::default()).map_err(|d| d.message)?;
        return Ok(Dest::Cidr { set: CidrSet { cidr, except: Vec::new() }, port: number(port)? });
    }
    let name = quoted.unwrap_or(target);
    if quoted.is_some() || (name.contains('.') && !name.contains('/')) {
        let dns = parse_dns_name(name, Span::default()).map_err(|d| d.message)?;
        return Ok(Dest::Fqdn { name: dns, port: number(port)? });
    }
    match named(ir, name)? {
        Named::Workload(i) => {
            let w = ir.workload(i).ok_or("no such workload")?;
            let ports: Vec<Port> = match port {
                None => w.ports.clone(),
                Some(p) => {
                    let found = w.ports.iter().find(|x| x.name == p || x.number.to_string() == p).cloned();
                    vec![found.ok_or_else(|| format!("workload {}/{} has no port `{p}`", w.namespace, w.name))?]
                }
            };
            Ok(Dest::Workload { workload: i, ports })
        }
        Named::Gateway(i) => {
            let g = ir.gateway(i).ok_or("no such gateway")?;
            let ports: Vec<u16> = match port {
                None => g.listeners.iter().map(|l| l.port).collect(),
                Some(p) => {
                    let found = g.listeners.iter().find(|l| l.name == p || l.port.to_string() == p).map(|l| l.port);
                    vec![found.ok_or_else(|| format!("gateway {}/{} has no listener `{p}`", g.namespace, g.name))?]
                }
            };
            Ok(Dest::Gateway { gateway: i, ports })
        }
    }
}
