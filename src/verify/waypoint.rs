//! Which waypoint a flow passes, as istiod binds them (DOMAIN.md, Istio
//! ambient policy): `istio.io/use-waypoint` on a Service binds that
//! Service's traffic, on a Namespace every Service in it (and pod traffic
//! too for a waypoint `for` workload or all), on a Pod its pod traffic;
//! the Service's or Pod's label beats the namespace's, `none` opts out, and
//! a label naming an unusable waypoint does not fall back to the
//! namespace's. Another namespace's waypoint needs
//! `istio.io/use-waypoint-namespace` and a mesh listener that admits the
//! namespace. A waypoint that is missing, or whose `istio.io/waypoint-for`
//! does not fit the traffic, is never bound: traffic goes straight to the
//! destination. Only mesh clients reach waypoints, and an ingress gateway
//! only with `istio.io/ingress-use-waypoint`.
//!
//! In the steady state every such binding holds and every waypoint is
//! ready; in a live state the Service's `istio.io/WaypointBound` condition
//! says whether it is bound, and the Gateway's `Programmed` condition
//! whether the waypoint is ready. The waypoint enforces only the policies
//! that target it: the Service, the waypoint's Gateway, or (from the root
//! namespace) the `istio-waypoint` GatewayClass.

use super::istio::{Request, authorize};
use super::{Endpoint, Flow, GATEWAY_NAME_LABEL, Model, Step, at, list, string_map};
use serde_json::Value;
use std::collections::BTreeMap;

const USE_WAYPOINT: &str = "istio.io/use-waypoint";
const USE_WAYPOINT_NAMESPACE: &str = "istio.io/use-waypoint-namespace";

/// The waypoint a flow passes.
pub(super) struct Route {
    pub endpoint: Endpoint,
    /// `Gateway ns/name`.
    pub object: String,
    pub ready: bool,
    /// Why the flow passes it (when ready), and why it fails (when not).
    pub passes: String,
    pub not_ready: String,
    namespace: String,
    name: String,
}

/// The traffic a waypoint takes (`istio.io/waypoint-for`, default service).
fn serves(gateway: &Value, traffic: &str) -> bool {
    let for_ = at(gateway, &["metadata", "labels", "istio.io/waypoint-for"]).as_str().unwrap_or("service");
    for_ == "all" || for_ == traffic
}

/// Whether the waypoint's mesh listener admits bindings from `ns`
/// (`allowedRoutes.namespaces.from`, default Same).
fn admits_namespace(gateway: &Value, ns: &str, ns_labels: &BTreeMap<String, String>) -> bool {
    if at(gateway, &["metadata", "namespace"]).as_str() == Some(ns) {
        return true;
    }
    let listeners = list(at(gateway, &["spec", "listeners"]));
    let mesh = listeners
        .iter()
        .find(|l| at(l, &["protocol"]).as_str() == Some("HBONE") || at(l, &["port"]).as_u64() == Some(15008));
    let Some(mesh) = mesh else { return false };
    let from = at(mesh, &["allowedRoutes", "namespaces", "from"]).as_str().unwrap_or("Same");
    match from {
        "All" => true,
        "Selector" => {
            let mut labels = ns_labels.clone();
            labels.insert("kubernetes.io/metadata.name".to_string(), ns.to_string());
            super::label_selector_matches(at(mesh, &["allowedRoutes", "namespaces", "selector"]), &labels)
        }
        _ => false,
    }
}

fn condition_true(v: &Value, kind: &str) -> bool {
    list(at(v, &["status", "conditions"])).iter().any(|c| {
        at(c, &["type"]).as_str() == Some(kind)
            && at(c, &["status"]).as_str() == Some("True")
            && (kind != "Programmed" || at(c, &["observedGeneration"]) == at(v, &["metadata", "generation"]))
    })
}

/// The binding label that decides: the object's own, else its namespace's.
fn binding<'l>(
    own: &'l BTreeMap<String, String>,
    namespace: &'l BTreeMap<String, String>,
    ns: &'l str,
) -> Option<(&'l str, &'l str)> {
    let labels = if own.contains_key(USE_WAYPOINT) { own } else { namespace };
    let name = labels.get(USE_WAYPOINT)?;
    let wns = labels.get(USE_WAYPOINT_NAMESPACE).map_or(ns, String::as_str);
    (name != "none").then_some((name.as_str(), wns))
}

impl<'a> Model<'a> {
    /// Why no waypoint takes the traffic of Service `ns/name` in the
    /// steady state (`None`: one does), for a policy that targets it: such
    /// a policy is enforced nowhere (istiod's `AncestorNotBound`).
    pub(super) fn unbound_service(&self, ns: &str, name: &str) -> Option<String> {
        let Some(svc) = self.service(ns, name) else {
            return Some(format!("there is no Service {ns}/{name}"));
        };
        let ns_labels = self.namespace_labels(ns);
        let svc_labels = string_map(at(svc, &["metadata", "labels"]));
        let Some((waypoint, wns)) = binding(&svc_labels, ns_labels, ns) else {
            return Some(format!(
                "no `{USE_WAYPOINT}` label binds Service {ns}/{name} to a waypoint (or it says `none`)"
            ));
        };
        let Some(gateway) = self.gateway(wns, waypoint) else {
            return Some(format!("Service {ns}/{name} names waypoint {wns}/{waypoint}, which does not exist"));
        };
        if !serves(gateway, "service") {
            return Some(format!("waypoint {wns}/{waypoint} does not serve Service traffic (`istio.io/waypoint-for`)"));
        }
        if !admits_namespace(gateway, ns, ns_labels) {
            return Some(format!("waypoint {wns}/{waypoint} does not admit namespace {ns} (AttachmentDenied)"));
        }
        None
    }

    /// The waypoint `f` passes, if any.
    pub(super) fn waypoint_of(&self, f: &Flow) -> Option<Route> {
        let ns = f.dst.namespace.as_deref()?;
        // Traffic ztunnel does not capture never reaches a waypoint.
        if !self.meshed(&f.src) {
            return None;
        }
        let ns_labels = self.namespace_labels(ns);
        let (name, wns, gateway, passes, not_ready) = match f.service.as_deref() {
            Some(svc_name) => {
                let svc = self.service(ns, svc_name);
                let svc_labels = svc.map(|s| string_map(at(s, &["metadata", "labels"]))).unwrap_or_default();
                // An ingress gateway skips the waypoint unless the Service
                // (or, failing a label there, its namespace) asks for it.
                if f.src.proxy && f.src.labels.contains_key(GATEWAY_NAME_LABEL) {
                    let ask = svc_labels
                        .get("istio.io/ingress-use-waypoint")
                        .or_else(|| ns_labels.get("istio.io/ingress-use-waypoint"));
                    if ask.map(String::as_str) != Some("true") {
                        return None;
                    }
                }
                let (name, wns) = binding(&svc_labels, ns_labels, ns)?;
                let gateway = self.gateway(wns, name);
                let bound = if self.steady {
                    gateway.is_some_and(|g| serves(g, "service") && admits_namespace(g, ns, ns_labels))
                } else {
                    svc.is_some_and(|s| condition_true(s, "istio.io/WaypointBound"))
                };
                if !bound {
                    return None;
                }
                (
                    name.to_string(),
                    wns.to_string(),
                    gateway,
                    "the Service is bound to this waypoint: the flow passes it".to_string(),
                    "the Service is bound to a waypoint that is not ready".to_string(),
                )
            }
            None => {
                let (name, wns) = binding(&f.dst.labels, ns_labels, ns)?;
                let gateway = self.gateway(wns, name)?;
                if !serves(gateway, "workload") || !admits_namespace(gateway, ns, ns_labels) {
                    return None;
                }
                let whose = if f.dst.labels.contains_key(USE_WAYPOINT) { "the pod's" } else { "the namespace's" };
                (
                    name.to_string(),
                    wns.to_string(),
                    Some(gateway),
                    format!(
                        "pod traffic is bound to this waypoint ({whose} label; it serves workload traffic): the flow passes it"
                    ),
                    format!("pod traffic is bound to a waypoint ({whose} label) that is not ready"),
                )
            }
        };
        let ready = gateway.is_some_and(|g| self.steady || condition_true(g, "Programmed"));
        let trust_domain = f
            .dst
            .principal
            .as_deref()
            .and_then(|p| p.split_once("/ns/"))
            .map_or("cluster.local", |(td, _)| td)
            .to_string();
        let account = gateway
            .and_then(|g| at(g, &["metadata", "annotations", "gateway.istio.io/service-account"]).as_str())
            .unwrap_or(&name)
            .to_string();
        let endpoint = Endpoint {
            proxy: true,
            ..Endpoint::pod(
                &wns,
                BTreeMap::from([(GATEWAY_NAME_LABEL.to_string(), name.clone())]),
                Some(format!("{trust_domain}/ns/{wns}/sa/{account}")),
            )
        };
        Some(Route {
            endpoint,
            object: format!("Gateway {wns}/{name}"),
            ready,
            passes,
            not_ready,
            namespace: wns,
            name,
        })
    }

    /// The policies the waypoint enforces for a flow through it: those
    /// that target the Service, the waypoint or the `istio-waypoint`
    /// GatewayClass, in input order.
    fn waypoint_policies(&self, f: &Flow, route: &Route) -> Vec<&'a Value> {
        let ns = f.dst.namespace.as_deref().unwrap_or("");
        let mut targets = vec![
            (route.namespace.clone(), "Gateway".to_string(), route.name.clone()),
            (self.root.clone(), "GatewayClass".to_string(), "istio-waypoint".to_string()),
        ];
        if let Some(svc) = &f.service {
            targets.push((ns.to_string(), "Service".to_string(), svc.clone()));
        }
        let mut found: Vec<(usize, &Value)> =
            targets.iter().filter_map(|t| self.targeted_authz.get(t)).flatten().copied().collect();
        found.sort_by_key(|(p, _)| *p);
        found.dedup_by_key(|(p, _)| *p);
        found.into_iter().map(|(_, p)| p).collect()
    }

    /// The waypoint's policy for a flow through it: full L7, with the
    /// client's identity.
    pub(super) fn waypoint_policy(&self, f: &Flow, route: &Route) -> Step {
        let policies = self.waypoint_policies(f, route);
        let q = Request {
            principal: f.src.principal.as_deref(),
            namespace: f.src.namespace.as_deref(),
            address: f.src.address,
            port: f.port,
            method: f.method.as_deref(),
            path: f.path.as_deref(),
            headers: Some(&f.headers),
        };
        authorize("waypoint", &policies, &q, false)
    }

    /// The requests the ALLOW rules of `f`'s waypoint name (each method
    /// with each path; `GET` and `/` where a rule leaves one out; a path
    /// prefix as itself), for a question that names none: "can A reach
    /// B" asks whether some request gets through. Empty without a waypoint.
    pub fn requests_toward(&self, f: &Flow) -> Vec<(String, String)> {
        let Some(route) = self.waypoint_of(f) else { return Vec::new() };
        let mut out: Vec<(String, String)> = Vec::new();
        for p in self.waypoint_policies(f, &route) {
            if at(p, &["spec", "action"]).as_str().is_some_and(|a| a != "ALLOW") {
                continue;
            }
            for r in list(at(p, &["spec", "rules"])) {
                for t in list(at(r, &["to"])) {
                    let o = at(t, &["operation"]);
                    let words = |k: &str| -> Vec<String> {
                        list(at(o, &[k])).iter().filter_map(Value::as_str).map(str::to_string).collect()
                    };
                    let (methods, paths) = (words("methods"), words("paths"));
                    if methods.is_empty() && paths.is_empty() {
                        continue;
                    }
                    let methods = if methods.is_empty() { vec!["GET".to_string()] } else { methods };
                    let paths: Vec<String> = if paths.is_empty() {
                        vec!["/".to_string()]
                    } else {
                        paths.iter().map(|p| p.trim_end_matches('*').to_string()).collect()
                    };
                    for m in &methods {
                        for path in &paths {
                            let request =
                                (m.to_ascii_uppercase(), if path.is_empty() { "/".into() } else { path.clone() });
                            if !out.contains(&request) {
                                out.push(request);
                            }
                        }
                    }
                }
            }
        }
        out
    }
}
