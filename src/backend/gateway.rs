//! Gateway API: waypoints (class `istio-waypoint`), ingress Gateways (class
//! `istio`), their HTTPRoutes, and ReferenceGrants for routes to Services in
//! other namespaces.
//!
//! A waypoint listens for HBONE on 15008 and says what it serves with
//! `istio.io/waypoint-for`. Routes match path prefixes and send to the
//! backend's Service on the port ztp takes to equal the workload's port.

use super::{Meta, obj, owned, spec};
use crate::hir::{ListenerProtocol, WaypointFor};
use crate::ir::Ir;
use crate::manifest::{Layer, Manifest};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const API: &str = "gateway.networking.k8s.io/v1";
const REFERENCE_GRANT_API: &str = "gateway.networking.k8s.io/v1beta1";
const GROUP: &str = "gateway.networking.k8s.io";

/// Layer 4, first step: the waypoints, before anything refers to them.
pub fn waypoints(ir: &Ir) -> Vec<Manifest> {
    // Only waypoints that front something (declared ones may be unused).
    let used: BTreeSet<usize> = ir.workloads.iter().filter_map(|w| w.waypoint).collect();
    ir.waypoints
        .iter()
        .enumerate()
        .filter(|(i, _)| used.contains(i))
        .map(|(_, wp)| {
            let serves = match wp.for_ {
                WaypointFor::Service => "service",
                WaypointFor::Workload => "workload",
                WaypointFor::All => "all",
            };
            owned(
                ir,
                Meta {
                    layer: Layer::L7,
                    step: 0,
                    api_version: API,
                    kind: "Gateway",
                    namespace: Some(&wp.namespace),
                    name: wp.name.clone(),
                    origin: &wp.origin,
                },
                BTreeMap::from([("istio.io/waypoint-for".to_string(), serves.to_string())]),
                spec(json!({
                    "gatewayClassName": "istio-waypoint",
                    "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
                })),
            )
        })
        .collect()
}

/// A DNS-1123 name for a route from its path: `/` → `root`, `/api/v1` → `api-v1`.
fn route_slug(path: &str) -> String {
    let slug: String = path
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if slug.is_empty() { "root".into() } else { slug }
}

/// Layer 5: ingress Gateways, ReferenceGrants, HTTPRoutes.
pub fn ingress(ir: &Ir) -> Vec<Manifest> {
    let mut out = Vec::new();
    // (backend namespace, route namespace) → Services.
    let mut grants: BTreeMap<(String, String), (BTreeSet<String>, crate::ir::Origin)> = BTreeMap::new();
    // Route names taken, per namespace (routes of several gateways share it).
    let mut taken: BTreeSet<(String, String)> = BTreeSet::new();
    for g in &ir.gateways {
        let listeners: Vec<Value> = g
            .listeners
            .iter()
            .map(|l| {
                let (protocol, tls) = match l.protocol {
                    ListenerProtocol::Http => ("HTTP", None),
                    ListenerProtocol::Https => (
                        "HTTPS",
                        Some(json!({
                            "mode": "Terminate",
                            "certificateRefs": [{"kind": "Secret", "name": l.certificate}],
                        })),
                    ),
                };
                obj([
                    ("name", Some(json!(l.name))),
                    ("port", Some(json!(l.port))),
                    ("protocol", Some(json!(protocol))),
                    ("hostname", l.hostname.as_ref().map(|h| json!(h))),
                    ("tls", tls),
                ])
            })
            .collect();
        out.push(owned(
            ir,
            Meta {
                layer: Layer::Ingress,
                step: 0,
                api_version: API,
                kind: "Gateway",
                namespace: Some(&g.namespace),
                name: g.name.clone(),
                origin: &g.origin,
            },
            BTreeMap::new(),
            spec(json!({"gatewayClassName": "istio", "listeners": listeners})),
        ));
        for r in &g.routes {
            let Some(backend) = ir.workload(r.backend) else { continue };
            let base = format!("{}-{}", g.name, route_slug(&r.path));
            let mut name = base.clone();
            let mut n = 1;
            while taken.contains(&(g.namespace.clone(), name.clone())) {
                n += 1;
                name = format!("{base}-{n}");
            }
            taken.insert((g.namespace.clone(), name.clone()));
            let parent_refs: Vec<Value> = if r.listeners.is_empty() {
                vec![json!({"name": g.name})]
            } else {
                r.listeners.iter().map(|l| json!({"name": g.name, "sectionName": l})).collect()
            };
            let cross = backend.namespace != g.namespace;
            if cross {
                grants
                    .entry((backend.namespace.clone(), g.namespace.clone()))
                    .or_insert_with(|| (BTreeSet::new(), r.origin.clone()))
                    .0
                    .insert(backend.service.clone());
            }
            let backend_ref = obj([
                ("name", Some(json!(backend.service))),
                ("namespace", cross.then(|| json!(backend.namespace))),
                ("port", Some(json!(r.port))),
            ]);
            let body = obj([
                ("parentRefs", Some(json!(parent_refs))),
                ("hostnames", (!r.hostnames.is_empty()).then(|| json!(r.hostnames))),
                (
                    "rules",
                    Some(json!([{
                        "matches": [{"path": {"type": "PathPrefix", "value": r.path}}],
                        "backendRefs": [backend_ref],
                    }])),
                ),
            ]);
            out.push(owned(
                ir,
                Meta {
                    layer: Layer::Ingress,
                    step: 2,
                    api_version: API,
                    kind: "HTTPRoute",
                    namespace: Some(&g.namespace),
                    name,
                    origin: &r.origin,
                },
                BTreeMap::new(),
                spec(body),
            ));
        }
    }
    for ((backend_ns, route_ns), (services, origin)) in grants {
        let to: Vec<Value> = services.iter().map(|s| json!({"group": "", "kind": "Service", "name": s})).collect();
        out.push(owned(
            ir,
            Meta {
                layer: Layer::Ingress,
                step: 1,
                api_version: REFERENCE_GRANT_API,
                kind: "ReferenceGrant",
                namespace: Some(&backend_ns),
                name: format!("ztp-from-{route_ns}"),
                origin: &origin,
            },
            BTreeMap::new(),
            spec(json!({"from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": route_ns}], "to": to})),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::route_slug;

    #[test]
    fn slugs() {
        assert_eq!(route_slug("/"), "root");
        assert_eq!(route_slug("/api/v1/"), "api-v1");
        assert_eq!(route_slug("/Foo_Bar"), "foo-bar");
    }
}

#[cfg(test)]
mod emit_tests {
    use super::*;
    use crate::backend::{find, ir_of};

    const CROSS: &str = r#"
namespace edge {
  gateway gw {
    listener https { port = 443, protocol = https, hostname = "shop.example.com", certificate = "shop-tls" }
    route "/api" -> shop/api:http { listeners = [https] }
  }
  allow gw -> shop/api:http
}
namespace shop {
  workload api { port http { number = 8080, protocol = http } }
}
"#;

    #[test]
    fn https_listener_terminates_tls() {
        let ms = ingress(&ir_of(CROSS));
        let gw = find(&ms, "Gateway", "gw");
        assert_eq!(gw["spec"]["gatewayClassName"], "istio");
        assert_eq!(
            gw["spec"]["listeners"],
            json!([{
                "name": "https", "port": 443, "protocol": "HTTPS", "hostname": "shop.example.com",
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "shop-tls"}]},
            }])
        );
    }

    #[test]
    fn cross_namespace_routes_get_a_reference_grant() {
        let ms = ingress(&ir_of(CROSS));
        let route = find(&ms, "HTTPRoute", "gw-api");
        assert_eq!(route["spec"]["parentRefs"], json!([{"name": "gw", "sectionName": "https"}]));
        assert_eq!(
            route["spec"]["rules"][0]["backendRefs"],
            json!([{"name": "api", "namespace": "shop", "port": 8080}])
        );
        let grant = find(&ms, "ReferenceGrant", "ztp-from-edge");
        assert_eq!(grant["metadata"]["namespace"], "shop");
        assert_eq!(grant["spec"]["to"], json!([{"group": "", "kind": "Service", "name": "api"}]));
        let steps: Vec<(&str, u8)> = ms.iter().map(|m| (m.kind, m.step)).collect();
        assert!(steps.contains(&("ReferenceGrant", 1)) && steps.contains(&("HTTPRoute", 2)));
    }

    #[test]
    fn waypoints_are_hbone_gateways_emitted_only_when_used() {
        let used = ir_of(
            r#"namespace a {
  waypoint wp { for = all }
  workload web {}
  workload api { port http { number = 80, protocol = http } }
  allow web -> api:http { http { methods = [GET] } }
}"#,
        );
        let wp = find(&waypoints(&used), "Gateway", "wp");
        assert_eq!(wp["metadata"]["labels"]["istio.io/waypoint-for"], "all");
        assert_eq!(wp["spec"]["listeners"], json!([{"name": "mesh", "port": 15008, "protocol": "HBONE"}]));
        assert!(waypoints(&ir_of("namespace a { waypoint wp {} }")).is_empty());
    }
}
