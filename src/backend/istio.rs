//! Istio: mesh-wide PeerAuthentication, one L4 AuthorizationPolicy per
//! workload (enforced by ztunnel) and one L7 policy per waypoint-fronted
//! workload (enforced by its waypoint).
//!
//! L4 policies use `selector` and only L4 attributes — principals,
//! namespaces, ipBlocks, ports — because ztunnel drops an ALLOW rule with any
//! L7 field (the policy then allows nothing). Every workload gets one, with
//! no rules when nothing may reach it: an ALLOW policy that matches nothing
//! denies everything at ztunnel. Behind a waypoint, the L4 policy admits the
//! waypoint's identity instead of the clients that pass it, so the waypoint
//! cannot be bypassed; clients that dial pod IPs keep direct admits (their
//! L4 flows also have a flow through the waypoint, the Service path). L7
//! policies attach with `targetRefs` to the Service, carry every flow that
//! crosses the waypoint (L4-only ones too, else the waypoint denies them)
//! and hold the methods, paths and headers. Ports are target ports, which
//! ztp takes to equal the Service ports.

use super::{Meta, obj, owned, spec};
use crate::hir::MtlsMode;
use crate::ir::{Dest, Flow, FlowIndex, Ir, Peer};
use crate::manifest::{Layer, Manifest};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const API: &str = "security.istio.io/v1";

/// Layer 3: the mesh-wide mTLS mode, in the root namespace.
pub fn peer_authentication(ir: &Ir) -> Vec<Manifest> {
    let mode = match ir.mesh.mtls {
        MtlsMode::Strict => "STRICT",
        MtlsMode::Permissive => "PERMISSIVE",
    };
    vec![owned(
        ir,
        Meta {
            layer: Layer::MeshIdentity,
            step: 0,
            api_version: API,
            kind: "PeerAuthentication",
            namespace: Some(&ir.mesh.root_namespace),
            name: "default".into(),
            origin: &ir.mesh.mtls_origin,
        },
        BTreeMap::new(),
        spec(json!({"mtls": {"mode": mode}})),
    )]
}

/// Who a flow's client is, for ztunnel or a waypoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Client {
    Principal(String),
    Namespace { name: String, not_principals: Vec<String> },
    Cidr { block: String, except: Vec<String> },
}

fn client(ir: &Ir, p: &Peer) -> Option<Client> {
    Some(match p {
        Peer::Workload(w) => Client::Principal(ir.workload(*w)?.principal.clone()),
        Peer::Gateway(g) => Client::Principal(ir.gateway(*g)?.principal.clone()),
        Peer::Namespace { name, except } => Client::Namespace {
            name: name.clone(),
            not_principals: except.iter().filter_map(|i| ir.workload(*i)).map(|w| w.principal.clone()).collect(),
        },
        Peer::Cidr(set) => {
            Client::Cidr { block: set.cidr.to_string(), except: set.except.iter().map(ToString::to_string).collect() }
        }
        Peer::World => return None,
    })
}

/// `{"source": s}`, moving `s` in (`json!` would copy it).
fn source(s: Value) -> Value {
    obj([("source", Some(s))])
}

/// `from` entries for a set of clients: principals merged into one source,
/// each namespace and CIDR its own (their exceptions belong to them).
fn sources(clients: &BTreeSet<Client>) -> Vec<Value> {
    let principals: Vec<&String> = clients
        .iter()
        .filter_map(|c| match c {
            Client::Principal(p) => Some(p),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    if !principals.is_empty() {
        out.push(json!({"source": {"principals": principals}}));
    }
    for c in clients {
        match c {
            Client::Principal(_) => {}
            Client::Namespace { name, not_principals } => out.push(source(obj([
                ("namespaces", Some(json!([name]))),
                ("notPrincipals", (!not_principals.is_empty()).then(|| json!(not_principals))),
            ]))),
            // Only clients without a mesh identity: pods of the mesh have
            // addresses in these ranges too.
            Client::Cidr { block, except } => out.push(source(obj([
                ("ipBlocks", Some(json!([block]))),
                ("notIpBlocks", (!except.is_empty()).then(|| json!(except))),
                ("notPrincipals", Some(json!(["*"]))),
            ]))),
        }
    }
    out
}

fn port_strings(ports: &[u16]) -> Vec<String> {
    ports.iter().map(ToString::to_string).collect()
}

fn dest_ports(f: &Flow) -> Vec<u16> {
    match &f.dst {
        Dest::Workload { ports, .. } => ports.iter().map(|p| p.number).collect(),
        _ => Vec::new(),
    }
}

/// L4 policies: layer 3 for workloads without a waypoint; for workloads
/// behind one, the narrowed policy goes after the waypoint binding (layer 4,
/// last step), so it never precedes the waypoint it admits.
pub fn l4_policies(ir: &Ir) -> Vec<Manifest> {
    l4_policies_of(ir, &ir.flow_index())
}

/// [`l4_policies`] with the program's flow index already built.
pub fn l4_policies_of(ir: &Ir, ix: &FlowIndex<'_>) -> Vec<Manifest> {
    let mut out = Vec::new();
    for (wi, w) in ir.workloads.iter().enumerate() {
        // ports → clients allowed on them.
        let mut by_ports: BTreeMap<Vec<u16>, BTreeSet<Client>> = BTreeMap::new();
        for f in FlowIndex::get(&ix.to_workload, wi) {
            let who = match f.via.and_then(|i| ir.waypoint(i)) {
                Some(wp) => Some(Client::Principal(wp.principal.clone())),
                None => client(ir, &f.src),
            };
            if let Some(c) = who {
                by_ports.entry(dest_ports(f)).or_default().insert(c);
            }
        }
        let rules: Vec<Value> = by_ports
            .iter()
            .map(|(ports, clients)| {
                obj([
                    ("from", Some(Value::Array(sources(clients)))),
                    ("to", Some(json!([{"operation": {"ports": port_strings(ports)}}]))),
                ])
            })
            .collect();
        let mut body = serde_json::Map::new();
        body.insert("selector".into(), json!({"matchLabels": w.selector}));
        body.insert("action".into(), json!("ALLOW"));
        if !rules.is_empty() {
            body.insert("rules".into(), Value::Array(rules));
        }
        let (layer, step) = if w.waypoint.is_some() { (Layer::L7, 3) } else { (Layer::MeshIdentity, 1) };
        out.push(owned(
            ir,
            Meta {
                layer,
                step,
                api_version: API,
                kind: "AuthorizationPolicy",
                namespace: Some(&w.namespace),
                name: format!("ztp-l4-{}", w.name),
                origin: &w.origin,
            },
            BTreeMap::new(),
            spec(Value::Object(body)),
        ));
    }
    out
}

/// L7 policies at each waypoint, one per fronted workload's Service.
pub fn l7_policies(ir: &Ir) -> Vec<Manifest> {
    let mut out = Vec::new();
    let ix = ir.flow_index();
    for (wi, w) in ir.workloads.iter().enumerate() {
        if w.waypoint.is_none() {
            continue;
        }
        let mut rules: BTreeSet<String> = BTreeSet::new();
        for f in FlowIndex::get(&ix.to_workload, wi).iter().filter(|f| f.via.is_some()) {
            let Dest::Workload { ports, .. } = &f.dst else { continue };
            let Some(c) = client(ir, &f.src) else { continue };
            let numbers: Vec<u16> = ports.iter().map(|p| p.number).collect();
            let operation = obj([
                ("ports", Some(json!(port_strings(&numbers)))),
                (
                    "methods",
                    f.http
                        .as_ref()
                        .filter(|h| !h.methods.is_empty())
                        .map(|h| json!(h.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>())),
                ),
                ("paths", f.http.as_ref().filter(|h| !h.paths.is_empty()).map(|h| json!(h.paths))),
            ]);
            let when: Vec<Value> = f
                .http
                .iter()
                .flat_map(|h| &h.headers)
                .map(|(k, v)| json!({"key": format!("request.headers[{k}]"), "values": [v]}))
                .collect();
            let rule = obj([
                ("from", Some(Value::Array(sources(&BTreeSet::from([c]))))),
                ("to", Some(json!([{"operation": operation}]))),
                ("when", (!when.is_empty()).then_some(Value::Array(when))),
            ]);
            rules.insert(rule.to_string());
        }
        let rules: Vec<Value> = rules.iter().filter_map(|r| serde_json::from_str(r).ok()).collect();
        let mut body = serde_json::Map::new();
        body.insert("targetRefs".into(), json!([{"group": "", "kind": "Service", "name": w.service}]));
        body.insert("action".into(), json!("ALLOW"));
        if !rules.is_empty() {
            body.insert("rules".into(), Value::Array(rules));
        }
        out.push(owned(
            ir,
            Meta {
                layer: Layer::L7,
                step: 1,
                api_version: API,
                kind: "AuthorizationPolicy",
                namespace: Some(&w.namespace),
                name: format!("ztp-l7-{}", w.name),
                origin: &w.origin,
            },
            BTreeMap::new(),
            spec(Value::Object(body)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{find, ir_of};

    #[test]
    fn mtls_mode_in_the_root_namespace() {
        let ir = ir_of("mesh { mtls = permissive, root_namespace = \"mesh-root\" }");
        let pa = find(&peer_authentication(&ir), "PeerAuthentication", "default");
        assert_eq!(pa["metadata"]["namespace"], "mesh-root");
        assert_eq!(pa["spec"]["mtls"]["mode"], "PERMISSIVE");
    }

    #[test]
    fn a_workload_nothing_reaches_allows_nothing() {
        let ir = ir_of("namespace a { workload w {} }");
        let ap = find(&l4_policies(&ir), "AuthorizationPolicy", "ztp-l4-w");
        assert_eq!(ap["spec"], json!({"action": "ALLOW", "selector": {"matchLabels": {"app": "w"}}}));
    }

    #[test]
    fn namespace_sources_use_namespaces_and_not_principals() {
        let ir = ir_of(
            r#"namespace a { workload x {} }
namespace b {
  workload db { port pg { number = 5432 } }
  allow namespace(a) except x -> db:pg
}"#,
        );
        let ap = find(&l4_policies(&ir), "AuthorizationPolicy", "ztp-l4-db");
        assert_eq!(
            ap["spec"]["rules"],
            json!([{
                "from": [{"source": {"namespaces": ["a"], "notPrincipals": ["cluster.local/ns/a/sa/x"]}}],
                "to": [{"operation": {"ports": ["5432"]}}],
            }])
        );
    }

    #[test]
    fn gateways_are_admitted_by_their_istio_identity() {
        let ir = ir_of(
            r#"namespace a {
  gateway edge { listener http { port = 80 } route "/" -> api:http }
  workload api { port http { number = 8080, protocol = http } }
  allow edge -> api:http
}"#,
        );
        let ap = find(&l4_policies(&ir), "AuthorizationPolicy", "ztp-l4-api");
        assert_eq!(
            ap["spec"]["rules"][0]["from"],
            json!([{"source": {"principals": ["cluster.local/ns/a/sa/edge-istio"]}}])
        );
    }

    #[test]
    fn cidr_sources_admit_only_clients_without_identity() {
        let ir = ir_of(
            "mesh { mtls = permissive }\nnamespace a {\n workload api { port p { number = 5432 } }\n allow 192.0.2.0/24 -> api:p\n}",
        );
        let ap = find(&l4_policies(&ir), "AuthorizationPolicy", "ztp-l4-api");
        assert_eq!(
            ap["spec"]["rules"][0]["from"],
            json!([{"source": {"ipBlocks": ["192.0.2.0/24"], "notPrincipals": ["*"]}}])
        );
    }

    #[test]
    fn l7_rules_go_to_the_waypoint_and_l4_admits_the_waypoint() {
        let ir = ir_of(
            r#"mesh { trust_domain = "prod.example" }
namespace a {
  workload web {}
  workload api { service = "api-svc", port http { number = 8080, protocol = http } }
  allow web -> api:http { http { methods = [POST], paths = ["/orders/*"], headers = { "X-Tenant" = "acme" } } }
}"#,
        );
        let l7 = find(&l7_policies(&ir), "AuthorizationPolicy", "ztp-l7-api");
        assert_eq!(l7["spec"]["targetRefs"], json!([{"group": "", "kind": "Service", "name": "api-svc"}]));
        assert_eq!(
            l7["spec"]["rules"],
            json!([{
                "from": [{"source": {"principals": ["prod.example/ns/a/sa/web"]}}],
                "to": [{"operation": {"methods": ["POST"], "paths": ["/orders/*"], "ports": ["8080"]}}],
                "when": [{"key": "request.headers[x-tenant]", "values": ["acme"]}],
            }])
        );
        let l4 = l4_policies(&ir);
        let api = l4.iter().find(|m| m.name == "ztp-l4-api").unwrap();
        assert_eq!((api.layer, api.step), (Layer::L7, 3), "narrowing comes after the binding");
        assert_eq!(
            api.to_value()["spec"]["rules"][0]["from"][0]["source"]["principals"],
            json!(["prod.example/ns/a/sa/waypoint"])
        );
    }

    #[test]
    fn pod_ip_clients_take_both_paths_on_l4_flows() {
        let ir = ir_of(
            r#"namespace a {
  workload web {}
  workload prom { uses_pod_ips = true }
  workload api {
    port http { number = 8080, protocol = http }
    port metrics { number = 9090, protocol = http }
  }
  allow web -> api:http { http { methods = [GET] } }
  allow prom -> api:metrics
}"#,
        );
        // Through the Service: a rule at the waypoint, ztunnel admitting the waypoint.
        let l7 = find(&l7_policies(&ir), "AuthorizationPolicy", "ztp-l7-api");
        assert!(l7["spec"]["rules"].as_array().unwrap().contains(&json!({
            "from": [{"source": {"principals": ["cluster.local/ns/a/sa/prom"]}}],
            "to": [{"operation": {"ports": ["9090"]}}],
        })));
        // To the pod IPs: ztunnel admitting the client itself.
        let l4 = find(&l4_policies(&ir), "AuthorizationPolicy", "ztp-l4-api");
        assert_eq!(
            l4["spec"]["rules"][1],
            json!({
                "from": [{"source": {"principals": ["cluster.local/ns/a/sa/prom", "cluster.local/ns/a/sa/waypoint"]}}],
                "to": [{"operation": {"ports": ["9090"]}}],
            })
        );
    }
}
