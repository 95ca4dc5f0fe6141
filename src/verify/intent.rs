//! The program's peers and destinations as the model's endpoints: which
//! pods a `.ztp` source or destination stands for, with their labels and
//! identities, and which concrete flows an `allow` or `expect` asks about
//! (one per destination port, the first method and path of an `http`
//! block). A `namespace(x)` source is a pod of `x` that is none of the
//! excepted workloads; an external name is looked up by that name; a CIDR
//! is its first address outside every `except`.

use super::{Endpoint, Flow};
use crate::ir::{CidrSet, Dest, Http, Ir, Peer};
use crate::value::Cidr;
use std::collections::BTreeMap;

/// The label of the stand-in pod for "any other pod of a namespace".
pub const BYSTANDER: &str = "ztp-verify-bystander";

fn workload(ir: &Ir, w: usize) -> Option<Endpoint> {
    let w = ir.workload(w)?;
    Some(Endpoint::pod(&w.namespace, w.selector.clone(), Some(w.principal.clone())))
}

fn gateway(ir: &Ir, g: usize) -> Option<Endpoint> {
    let g = ir.gateway(g)?;
    let labels = BTreeMap::from([("gateway.networking.k8s.io/gateway-name".to_string(), g.name.clone())]);
    Some(Endpoint { proxy: true, ..Endpoint::pod(&g.namespace, labels, Some(g.principal.clone())) })
}

/// The first address of `set` outside its excepts (the network address
/// itself when nothing is excepted there).
pub(crate) fn address_of(set: &CidrSet) -> Cidr {
    let host = |c: &Cidr| Cidr { addr: c.addr, prefix: if c.addr.is_ipv4() { 32 } else { 128 } };
    let mut candidate = host(&set.cidr);
    for e in &set.except {
        if e.contains(&candidate) {
            // Step past this except: the address right after its block.
            let bits = match e.addr {
                std::net::IpAddr::V4(a) => u128::from(u32::from(a)),
                std::net::IpAddr::V6(a) => u128::from(a),
            };
            let width = if e.addr.is_ipv4() { 32 } else { 128 };
            let size = 1u128.checked_shl(width - u32::from(e.prefix)).unwrap_or(0);
            let next = bits.wrapping_add(size);
            let addr = match e.addr {
                std::net::IpAddr::V4(_) => std::net::IpAddr::V4(u32::try_from(next).unwrap_or(0).into()),
                std::net::IpAddr::V6(_) => std::net::IpAddr::V6(next.into()),
            };
            candidate = host(&Cidr { addr, prefix: e.prefix });
        }
    }
    candidate
}

/// The source endpoint of a peer, and whether it addresses pod IPs.
pub fn source(ir: &Ir, p: &Peer) -> Option<(Endpoint, bool)> {
    match p {
        Peer::Workload(w) => Some((workload(ir, *w)?, ir.workload(*w)?.uses_pod_ips)),
        Peer::Gateway(g) => Some((gateway(ir, *g)?, false)),
        Peer::World => Some((Endpoint::world(), false)),
        Peer::Namespace { name, .. } => {
            let labels = BTreeMap::from([("app".to_string(), BYSTANDER.to_string())]);
            let principal = format!("{}/ns/{name}/sa/default", ir.mesh.trust_domain);
            Some((Endpoint::pod(name, labels, Some(principal)), false))
        }
        Peer::Cidr(set) => Some((Endpoint::external_address(address_of(set)), false)),
    }
}

/// The concrete flows `src -> dst` stands for, each with a short name.
pub fn flows(ir: &Ir, src: &Peer, dst: &Dest, http: Option<&Http>) -> Vec<(String, Flow)> {
    let Some((from, pod_ips)) = source(ir, src) else { return Vec::new() };
    let method = http.map(|h| h.methods.first().map_or("GET", |m| m.as_str()).to_string());
    let path = http.map(|h| h.paths.first().map_or("/", |p| p.trim_end_matches('*')).to_string());
    let targets: Vec<(Endpoint, Option<String>, u16, String)> = match dst {
        Dest::Workload { workload: w, ports } => {
            let (Some(to), Some(wl)) = (workload(ir, *w), ir.workload(*w)) else { return Vec::new() };
            let service = (!pod_ips).then(|| wl.service.clone());
            ports
                .iter()
                .map(|p| (to.clone(), service.clone(), p.number, format!("{}/{}:{}", wl.namespace, wl.name, p.number)))
                .collect()
        }
        Dest::Gateway { gateway: g, ports } => {
            let (Some(to), Some(gw)) = (gateway(ir, *g), ir.gateway(*g)) else { return Vec::new() };
            ports.iter().map(|p| (to.clone(), None, *p, format!("{}/{}:{p}", gw.namespace, gw.name))).collect()
        }
        Dest::Fqdn { name, port } => {
            // A pattern stands for one name it matches.
            let concrete = name.as_str().replace("**.", "a.").replace('*', "a");
            vec![(Endpoint::external_name(&concrete), None, *port, format!("{concrete}:{port}"))]
        }
        Dest::Cidr { set, port } => {
            let a = address_of(set);
            vec![(Endpoint::external_address(a), None, *port, format!("{}:{port}", a.addr))]
        }
    };
    let from_name = match src {
        Peer::Workload(w) => ir.workload(*w).map(|w| format!("{}/{}", w.namespace, w.name)),
        Peer::Gateway(g) => ir.gateway(*g).map(|g| format!("{}/{}", g.namespace, g.name)),
        Peer::World => Some("world".to_string()),
        Peer::Namespace { name, .. } => Some(format!("namespace({name})")),
        Peer::Cidr(set) => Some(set.cidr.to_string()),
    }
    .unwrap_or_default();
    targets
        .into_iter()
        .map(|(to, service, port, to_name)| {
            let flow = Flow {
                src: from.clone(),
                dst: to,
                service,
                port,
                method: method.clone(),
                path: path.clone(),
                headers: http.map(|h| h.headers.clone()).unwrap_or_default(),
            };
            (format!("{from_name} -> {to_name}"), flow)
        })
        .collect()
}
