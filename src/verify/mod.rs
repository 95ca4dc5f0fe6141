//! Reachability: whether a flow between two pods is allowed by a set of
//! Cilium, Istio ambient and Gateway API objects, and which layer and
//! object decides it, with the semantics of DOMAIN.md ("Reachability
//! semantics"). It reads objects as JSON, so it judges ztp's own output,
//! a live cluster's state, or hand-written YAML alike — never the IR.
//!
//! A flow is a sequence of hops. A client whose Service is bound to a
//! waypoint reaches the waypoint, which enforces the L7 policy with the
//! client's identity and opens a second hop as itself; a client that
//! addresses pod IPs goes direct, unless its destination's pod or
//! namespace binds pod traffic to a waypoint too (`waypoint.rs`). Between
//! two ambient pods a hop travels as HBONE on port 15008, so Cilium sees
//! 15008 and ztunnel sees the target port. Per hop: the source's Cilium
//! egress, the destination's Cilium ingress (`cilium.rs`), then ztunnel's
//! policy at the destination (`istio.rs`: STRICT implicit deny, DENY
//! before ALLOW, L4 attributes only). Egress to the world is Cilium's
//! alone: entities, CIDRs with `except`, and FQDN rules, which match only
//! names one of the endpoint's DNS rules lets it look up.
//!
//! The model is built once per set of objects and indexed (`index.rs`),
//! so a question reads only the objects that can apply to it.

mod cilium;
pub mod diff;
pub mod estate;
pub mod expect;
mod index;
pub mod intent;
pub mod inventory;
mod istio;
pub mod manifests;
pub mod query;
pub mod report;
pub mod revision;
mod waypoint;

pub use cilium::fqdn_pattern_matches;

use crate::source::Span;
use crate::value::{Cidr, parse_cidr};
use index::{Bucket, index_key};
use serde_json::Value;
use std::collections::BTreeMap;

/// The pseudo label that carries a pod's namespace in Cilium selectors.
const NS_LABEL: &str = "io.kubernetes.pod.namespace";
/// The label of an Istio-managed Gateway's pods (waypoints and ingress gateways).
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// Where ambient pods see kubelet probes come from.
pub const PROBE_ADDRESS: &str = "169.254.7.127/32";
/// Istio ambient's tunnel port.
pub const HBONE_PORT: u16 = 15008;

/// A pod (or the world outside the cluster).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `None` for the world.
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The SPIFFE principal without `spiffe://` (`td/ns/x/sa/y`).
    pub principal: Option<String>,
    /// Istio's own proxies (gateways, waypoints) are not captured by
    /// ztunnel: they speak HBONE themselves.
    pub proxy: bool,
    /// Outside the cluster: the DNS name the client looked up, if any.
    pub dns_name: Option<String>,
    /// Outside the cluster: the address, if known.
    pub address: Option<Cidr>,
    /// The pod's named container ports, for rules that name a port.
    pub named_ports: BTreeMap<String, u16>,
    /// The node's own network namespace (kubelet probes): toward an
    /// ambient pod it is SNATed to 169.254.7.127 and skips ztunnel.
    pub host: bool,
    /// The workload's name, when it is known and differs from what the
    /// service account says (manifests' pods running as `default`).
    pub name: Option<String>,
}

impl Endpoint {
    pub fn world() -> Endpoint {
        Endpoint {
            namespace: None,
            labels: BTreeMap::new(),
            principal: None,
            proxy: false,
            dns_name: None,
            address: None,
            named_ports: BTreeMap::new(),
            host: false,
            name: None,
        }
    }

    /// A kubelet probe from the node (DOMAIN.md: ambient probes are
    /// SNATed to `169.254.7.127`).
    pub fn probe() -> Endpoint {
        let address = parse_cidr(PROBE_ADDRESS, Span::default()).ok();
        Endpoint { address, host: true, ..Endpoint::world() }
    }

    /// A pod of `namespace` with `labels`, running as `principal`.
    pub fn pod(namespace: &str, labels: BTreeMap<String, String>, principal: Option<String>) -> Endpoint {
        Endpoint { namespace: Some(namespace.to_string()), labels, principal, ..Endpoint::world() }
    }

    /// An external name, as a client resolves it.
    pub fn external_name(name: &str) -> Endpoint {
        Endpoint { dns_name: Some(name.trim_end_matches('.').to_ascii_lowercase()), ..Endpoint::world() }
    }

    /// An external address.
    pub fn external_address(address: Cidr) -> Endpoint {
        Endpoint { address: Some(address), ..Endpoint::world() }
    }

    fn describe(&self) -> String {
        match (&self.namespace, &self.principal) {
            (None, _) if self.host => "kubelet probe".to_string(),
            (None, _) if self.dns_name.is_some() => self.dns_name.clone().unwrap_or_default(),
            (None, _) if self.address.is_some() => self.address.map(|a| a.addr.to_string()).unwrap_or_default(),
            (None, _) => "world".to_string(),
            (Some(ns), _) if self.name.is_some() => format!("{ns}/{}", self.name.as_deref().unwrap_or_default()),
            (Some(ns), Some(p)) => format!("{ns}/{}", p.rsplit('/').next().unwrap_or(p)),
            (Some(ns), None) => format!("{ns}/(no identity)"),
        }
    }

    /// The service account of the principal (`td/ns/x/sa/<sa>`).
    fn service_account(&self) -> Option<&str> {
        self.principal.as_deref().and_then(|p| p.rsplit_once("/sa/")).map(|(_, sa)| sa)
    }
}

/// What a client asks for.
#[derive(Clone, Debug)]
pub struct Flow {
    pub src: Endpoint,
    pub dst: Endpoint,
    /// The destination's Service, when the client addresses it (`None`:
    /// pod IPs).
    pub service: Option<String>,
    pub port: u16,
    pub method: Option<String>,
    pub path: Option<String>,
    /// The request's headers, names lower-case (L7 only).
    pub headers: BTreeMap<String, String>,
}

/// The verdict and who decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied { layer: &'static str, object: String, why: String },
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        *self == Verdict::Allowed
    }
}

fn denied(layer: &'static str, object: impl Into<String>, why: impl Into<String>) -> Verdict {
    Verdict::Denied { layer, object: object.into(), why: why.into() }
}

/// One layer's decision on one hop, for `explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// `src -> dst` of the hop (a flow through a waypoint has two).
    pub hop: String,
    pub layer: &'static str,
    pub allowed: bool,
    /// The object that decided: the rule's policy, the default deny, or
    /// `None` where no object applies.
    pub object: Option<String>,
    pub why: String,
}

fn pass(layer: &'static str, object: Option<String>, why: impl Into<String>) -> Step {
    Step { hop: String::new(), layer, allowed: true, object, why: why.into() }
}

fn stop(layer: &'static str, object: impl Into<String>, why: impl Into<String>) -> Step {
    Step { hop: String::new(), layer, allowed: false, object: Some(object.into()), why: why.into() }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    static NULL: Value = Value::Null;
    path.iter().try_fold(v, |v, k| v.get(*k)).unwrap_or(&NULL)
}

/// `Kind ns/name`, or `Kind name` for a cluster-wide object: how the model
/// names the objects that decide.
pub fn name_of(v: &Value) -> String {
    let kind = at(v, &["kind"]).as_str().unwrap_or("");
    let name = at(v, &["metadata", "name"]).as_str().unwrap_or("");
    match at(v, &["metadata", "namespace"]).as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A `metadata.labels`-style map of strings.
fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

fn cidr_of(v: &Value) -> Option<Cidr> {
    parse_cidr(v.as_str()?, Span::default()).ok()
}

fn strip_source(k: &str) -> &str {
    k.strip_prefix("k8s:").or_else(|| k.strip_prefix("any:")).unwrap_or(k)
}

/// What an AuthorizationPolicy's targetRef names: namespace, kind, name.
type TargetRef = (String, String, String);

/// The objects the model reads, indexed.
#[derive(Default)]
pub struct Model<'a> {
    /// CiliumNetworkPolicies by namespace, CiliumClusterwideNetworkPolicies
    /// cluster-wide, by their endpoint selector.
    cilium: Bucket<'a>,
    netpol: BTreeMap<String, Vec<&'a Value>>,
    /// AuthorizationPolicies without targetRefs (ztunnel's), by namespace
    /// and selector.
    selector_authz: Bucket<'a>,
    /// AuthorizationPolicies with targetRefs (the waypoint's), by
    /// namespace, target kind and name; with their input position.
    targeted_authz: BTreeMap<TargetRef, Vec<(usize, &'a Value)>>,
    peer_auth: BTreeMap<String, Vec<&'a Value>>,
    gateways: BTreeMap<(String, String), &'a Value>,
    services: BTreeMap<(String, String), &'a Value>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Istio's root namespace.
    root: String,
    /// `Kind ns/name` → where it came from: the `.ztp` line
    /// (`ztp.dev/source`), or the YAML file and line it was read from.
    sources: BTreeMap<String, String>,
    /// Judge the steady state a build describes: every waypoint a Service
    /// names is bound and ready (no controller has run).
    steady: bool,
}

impl<'a> Model<'a> {
    pub fn new(objects: impl IntoIterator<Item = &'a Value>, root_namespace: &str) -> Model<'a> {
        let mut m = Model { root: root_namespace.to_string(), ..Model::default() };
        for (position, o) in objects.into_iter().enumerate() {
            if let Some(src) = at(o, &["metadata", "annotations", "ztp.dev/source"]).as_str() {
                m.sources.insert(name_of(o), src.to_string());
            }
            let ns = at(o, &["metadata", "namespace"]).as_str();
            let name = at(o, &["metadata", "name"]).as_str().unwrap_or("");
            let key = |ns: Option<&str>| (ns.unwrap_or("").to_string(), name.to_string());
            match at(o, &["kind"]).as_str() {
                Some("CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy") => {
                    let selector = at(o, &["spec", "endpointSelector", "matchLabels"]);
                    let namespace = if at(o, &["kind"]).as_str() == Some("CiliumNetworkPolicy") {
                        Some(ns.unwrap_or(""))
                    } else {
                        None
                    };
                    m.cilium.push(o, namespace, index_key(selector, strip_source, NS_LABEL));
                }
                Some("NetworkPolicy") => m.netpol.entry(ns.unwrap_or("").to_string()).or_default().push(o),
                Some("AuthorizationPolicy") => {
                    let refs: Vec<&Value> = list(at(o, &["spec", "targetRefs"]))
                        .iter()
                        .chain(Some(at(o, &["spec", "targetRef"])).filter(|t| !t.is_null()))
                        .collect();
                    if at(o, &["spec", "targetRefs"]).is_null() && at(o, &["spec", "targetRef"]).is_null() {
                        let selector = at(o, &["spec", "selector", "matchLabels"]);
                        m.selector_authz.push(o, Some(ns.unwrap_or("")), index_key(selector, |k| k, ""));
                    }
                    for t in refs {
                        let kind = at(t, &["kind"]).as_str().unwrap_or("").to_string();
                        let target = at(t, &["name"]).as_str().unwrap_or("").to_string();
                        let entry = m.targeted_authz.entry((ns.unwrap_or("").to_string(), kind, target)).or_default();
                        if entry.last().is_none_or(|(p, _)| *p != position) {
                            entry.push((position, o));
                        }
                    }
                }
                Some("PeerAuthentication") => m.peer_auth.entry(ns.unwrap_or("").to_string()).or_default().push(o),
                Some("Gateway") => {
                    m.gateways.entry(key(ns)).or_insert(o);
                }
                Some("Service") => {
                    m.services.entry(key(ns)).or_insert(o);
                }
                Some("Namespace") => {
                    m.namespaces.entry(name.to_string()).or_insert_with(|| string_map(at(o, &["metadata", "labels"])));
                }
                _ => {}
            }
        }
        m
    }

    /// The model of a build's output, once the controllers have caught up.
    pub fn steady(objects: impl IntoIterator<Item = &'a Value>, root_namespace: &str) -> Model<'a> {
        Model { steady: true, ..Model::new(objects, root_namespace) }
    }

    /// Names where each object came from (`Kind ns/name` → text), for
    /// objects that carry no `ztp.dev/source`.
    pub fn with_sources(mut self, sources: BTreeMap<String, String>) -> Model<'a> {
        for (k, v) in sources {
            self.sources.entry(k).or_insert(v);
        }
        self
    }

    /// Where an object came from: its `.ztp` line, or its YAML file and line.
    pub fn source_of(&self, object: &str) -> Option<&str> {
        self.sources.get(object).map(String::as_str)
    }

    fn namespace_labels(&self, ns: &str) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.namespaces.get(ns).unwrap_or(&EMPTY)
    }

    fn enrolled(&self, ns: &str) -> bool {
        self.namespace_labels(ns).get("istio.io/dataplane-mode").map(String::as_str) == Some("ambient")
    }

    /// A pod in the ambient mesh: its namespace is enrolled (and it is no proxy).
    fn ambient(&self, e: &Endpoint) -> bool {
        let Some(ns) = &e.namespace else { return false };
        !e.proxy && self.enrolled(ns) && e.labels.get("istio.io/dataplane-mode").map(String::as_str) != Some("none")
    }

    /// Speaks HBONE: an ambient pod or one of Istio's proxies in an enrolled namespace.
    fn meshed(&self, e: &Endpoint) -> bool {
        self.ambient(e) || (e.proxy && e.namespace.as_deref().is_some_and(|ns| self.enrolled(ns)))
    }

    fn service(&self, ns: &str, name: &str) -> Option<&'a Value> {
        self.services.get(&(ns.to_string(), name.to_string())).copied()
    }

    fn gateway(&self, ns: &str, name: &str) -> Option<&'a Value> {
        self.gateways.get(&(ns.to_string(), name.to_string())).copied()
    }

    /// Judges one flow.
    pub fn check(&self, f: &Flow) -> Verdict {
        self.explain(f).0
    }

    /// Judges one flow and says, hop by hop and layer by layer, who
    /// decided: every step up to the first that denies.
    pub fn explain(&self, f: &Flow) -> (Verdict, Vec<Step>) {
        let mut steps = Vec::new();
        match self.waypoint_of(f) {
            Some(route) => {
                let wp = &route.endpoint;
                let mut routing = if route.ready {
                    pass("waypoint", Some(route.object.clone()), route.passes.clone())
                } else {
                    stop("waypoint", route.object.clone(), route.not_ready.clone())
                };
                routing.hop = format!("{} -> {}", f.src.describe(), f.dst.describe());
                steps.push(routing);
                if route.ready && self.hop(&f.src, wp, f.port, true, &mut steps) {
                    let mut l7 = self.waypoint_policy(f, &route);
                    l7.hop = format!("{} -> {}", f.src.describe(), wp.describe());
                    let through = l7.allowed;
                    steps.push(l7);
                    if through {
                        self.hop(wp, &f.dst, f.port, false, &mut steps);
                    }
                }
            }
            None => {
                self.hop(&f.src, &f.dst, f.port, false, &mut steps);
            }
        }
        let verdict = match steps.iter().find(|s| !s.allowed) {
            Some(s) => denied(s.layer, s.object.clone().unwrap_or_default(), s.why.clone()),
            None => Verdict::Allowed,
        };
        (verdict, steps)
    }

    /// One connection from `a` to `b` for target port `port`; false once
    /// a layer denies it.
    fn hop(&self, a: &Endpoint, b: &Endpoint, port: u16, to_waypoint: bool, steps: &mut Vec<Step>) -> bool {
        let hbone = self.meshed(a) && (self.meshed(b) || to_waypoint);
        let wire = if hbone { HBONE_PORT } else { port };
        let name = format!("{} -> {}", a.describe(), b.describe());
        if a.host && !self.ambient(b) {
            // Outside the ambient mesh the probe comes from the host, which
            // Cilium admits to the node's own pods by default.
            let mut s = pass("Cilium", None, "from the node to a pod outside the ambient mesh: Cilium admits the host");
            s.hop = name;
            steps.push(s);
            return true;
        }
        let mut layers = vec![self.cilium(a, b, wire, Direction::Egress)];
        if layers.iter().all(|s| s.allowed) {
            layers.push(self.cilium(b, a, wire, Direction::Ingress));
        }
        // Probes are SNATed past ztunnel: only Cilium governs them.
        if layers.iter().all(|s| s.allowed) && self.ambient(b) && !a.host {
            layers.push(self.ztunnel(a, b, port, hbone));
        }
        let ok = layers.iter().all(|s| s.allowed);
        steps.extend(layers.into_iter().map(|mut s| {
            s.hop = name.clone();
            s
        }));
        ok
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// `matchLabels` (a JSON map, or null for "everything") against labels.
fn labels_match(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    match selector.as_object() {
        None => true,
        Some(m) => m.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str()),
    }
}

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`);
/// null selects everything.
fn label_selector_matches(sel: &Value, labels: &BTreeMap<String, String>) -> bool {
    labels_match(at(sel, &["matchLabels"]), labels)
        && list(at(sel, &["matchExpressions"])).iter().all(|e| expression_matches(e, labels, |k| k))
}

/// One `matchExpressions` entry; `normalize` maps its key to a label name.
fn expression_matches(e: &Value, labels: &BTreeMap<String, String>, normalize: fn(&str) -> &str) -> bool {
    let key = normalize(at(e, &["key"]).as_str().unwrap_or(""));
    let values: Vec<&str> = list(at(e, &["values"])).iter().filter_map(Value::as_str).collect();
    let have = labels.get(key).map(String::as_str);
    match at(e, &["operator"]).as_str() {
        Some("In") => have.is_some_and(|h| values.contains(&h)),
        Some("NotIn") => have.is_none_or(|h| !values.contains(&h)),
        Some("Exists") => have.is_some(),
        Some("DoesNotExist") => have.is_none(),
        _ => false,
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, app: &str) -> Endpoint {
        Endpoint::pod(
            ns,
            BTreeMap::from([("app".to_string(), app.to_string())]),
            Some(format!("cluster.local/ns/{ns}/sa/{app}")),
        )
    }

    fn flow(src: &Endpoint, dst: &Endpoint, port: u16) -> Flow {
        Flow {
            src: src.clone(),
            dst: dst.clone(),
            service: None,
            port,
            method: None,
            path: None,
            headers: BTreeMap::new(),
        }
    }

    fn ambient(ns: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"istio.io/dataplane-mode": "ambient"}}})
    }

    #[test]
    fn fqdn_egress_needs_its_dns_rule_and_deny_beats_cidr_allows() {
        let deny = json!({"kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "dd"},
            "spec": {"endpointSelector": {}, "egress": [{}]}});
        let fqdn = |dns: Value| {
            json!({"kind": "CiliumNetworkPolicy", "metadata": {"name": "x", "namespace": "a"},
            "spec": {"endpointSelector": {"matchLabels": {"app": "x"}}, "enableDefaultDeny": {"egress": false},
                "egress": [
                    {"toFQDNs": [{"matchName": "api.github.com"}], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
                    {"toEndpoints": [{"matchLabels": {"k8s:k8s-app": "kube-dns", "k8s:io.kubernetes.pod.namespace": "kube-system"}}],
                     "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}], "rules": {"dns": dns}}]},
                    {"toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}]}]}})
        };
        let x = pod("a", "x");
        let to = |dst: Endpoint, port| Flow {
            src: x.clone(),
            dst,
            service: None,
            port,
            method: None,
            path: None,
            headers: BTreeMap::new(),
        };
        let github = to(Endpoint::external_name("api.github.com"), 443);
        let by_name = fqdn(json!([{"matchName": "api.github.com"}]));
        let m = Model::new([&deny, &by_name], "istio-system");
        assert!(m.check(&github).allowed());
        assert!(!m.check(&to(Endpoint::external_name("api.cloudflare.com"), 443)).allowed());
        let by_pattern = fqdn(json!([{"matchPattern": "*.example.com"}]));
        let m = Model::new([&deny, &by_pattern], "istio-system");
        assert!(!m.check(&github).allowed(), "no DNS rule lets it resolve the name");
        let ip = |s: &str| Endpoint::external_address(parse_cidr(s, Span::default()).unwrap());
        assert!(m.check(&to(ip("10.2.3.4/32"), 5432)).allowed());
        assert!(!m.check(&to(ip("10.1.3.4/32"), 5432)).allowed(), "except");
        let meta = json!({"kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "meta"},
            "spec": {"endpointSelector": {}, "enableDefaultDeny": {"egress": false, "ingress": false},
                "egressDeny": [{"toCIDRSet": [{"cidr": "10.2.0.0/16"}]}]}});
        let m = Model::new([&deny, &meta, &by_name], "istio-system");
        assert!(
            matches!(m.check(&to(ip("10.2.3.4/32"), 5432)), Verdict::Denied { ref object, .. } if object.contains("meta"))
        );
    }

    #[test]
    fn fqdn_patterns_read_like_cilium() {
        assert!(fqdn_pattern_matches("*.x.io", "a.x.io"));
        assert!(!fqdn_pattern_matches("*.x.io", "a.b.x.io"));
        assert!(fqdn_pattern_matches("*x.io", "evilx.io"));
        assert!(!fqdn_pattern_matches("*x.io", "www.x.io"));
        assert!(fqdn_pattern_matches("**", "any.thing"));
        assert!(fqdn_pattern_matches("**.x.io", "a.b.x.io"));
        assert!(!fqdn_pattern_matches("**.x.io", "x.io"));
    }

    /// ztunnel's reading of rules it cannot fully see (DOMAIN.md, `handleRule`).
    #[test]
    fn ztunnel_drops_l7_allow_rules_and_reads_deny_rules_by_their_l4_part() {
        let ap = |action: &str, rules: Value| {
            json!({"kind": "AuthorizationPolicy", "metadata": {"name": "p", "namespace": "a"},
                "spec": {"action": action, "selector": {"matchLabels": {"app": "y"}}, "rules": rules}})
        };
        let f = flow(&pod("a", "x"), &pod("a", "y"), 80);
        let check = |p: Value| Model::new([&p, &ambient("a")], "istio-system").check(&f);
        // DENY with ports + methods in one entry: the methods go, it denies more.
        assert!(!check(ap("DENY", json!([{"to": [{"operation": {"ports": ["80"], "methods": ["POST"]}}]}]))).allowed());
        // DENY with an L7-only entry: the whole rule never fires (fails open).
        assert!(check(ap("DENY", json!([{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/x"]}}], "to": [{"operation": {"methods": ["POST"]}}]}]))).allowed());
        // ALLOW with any L7 field is dropped: the policy allows nothing.
        assert!(!check(ap("ALLOW", json!([{"to": [{"operation": {"ports": ["80"], "paths": ["/"]}}]}]))).allowed());
        // trustDomains is dropped: alone it leaves an entry that matches all.
        assert!(!check(ap("DENY", json!([{"from": [{"source": {"trustDomains": ["other.example"]}}]}]))).allowed());
        assert!(check(ap("ALLOW", json!([{"from": [{"source": {"trustDomains": ["other.example"]}}]}]))).allowed());
        // An L7 `when` key never matches at ztunnel; an L4 one does.
        assert!(check(ap("DENY", json!([{"when": [{"key": "request.headers[x]", "values": ["1"]}]}]))).allowed());
        assert!(!check(ap("DENY", json!([{"when": [{"key": "source.namespace", "values": ["a"]}]}]))).allowed());
        // Dry-run and AUDIT policies never decide.
        let mut dry = ap("DENY", json!([{}]));
        dry["metadata"]["annotations"] = json!({"istio.io/dry-run": "true"});
        assert!(check(dry).allowed());
        assert!(check(ap("AUDIT", json!([{}]))).allowed());
    }

    #[test]
    fn waypoints_ignore_namespace_wide_policies() {
        let svc = json!({"kind": "Service", "metadata": {"name": "y", "namespace": "a", "labels": {"istio.io/use-waypoint": "wp"}}});
        let gw = json!({"kind": "Gateway", "metadata": {"name": "wp", "namespace": "a"}});
        let deny_all =
            json!({"kind": "AuthorizationPolicy", "metadata": {"name": "allow-nothing", "namespace": "a"}, "spec": {}});
        let mut f = flow(&pod("a", "x"), &pod("a", "y"), 80);
        f.service = Some("y".into());
        let ns = ambient("a");
        let m = Model::steady([&ns, &svc, &gw, &deny_all], "istio-system");
        // The namespace-wide allow-nothing binds ztunnel at y (the waypoint's hop),
        // but the waypoint itself ignores it.
        let (_, steps) = m.explain(&f);
        assert!(steps.iter().any(|s| s.layer == "waypoint" && s.allowed && s.object.is_none()), "{steps:?}");
        assert!(matches!(m.check(&f), Verdict::Denied { layer: "ztunnel", .. }));
    }

    #[test]
    fn nothing_selects_means_allowed() {
        let m = Model::new(&[], "istio-system");
        assert!(m.check(&flow(&pod("a", "x"), &pod("a", "y"), 80)).allowed());
    }

    #[test]
    fn default_deny_needs_an_allow_on_the_hbone_port() {
        let deny = json!({"kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "dd"},
            "spec": {"endpointSelector": {}, "ingress": [{}], "egress": [{}]}});
        let allow_in = json!({"kind": "CiliumNetworkPolicy", "metadata": {"name": "y", "namespace": "a"},
            "spec": {"endpointSelector": {"matchLabels": {"app": "y"}}, "enableDefaultDeny": {"ingress": false, "egress": false},
                "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "x"}}], "toPorts": [{"ports": [{"port": "15008", "protocol": "TCP"}]}]}]}});
        let allow_out = json!({"kind": "CiliumNetworkPolicy", "metadata": {"name": "x", "namespace": "a"},
            "spec": {"endpointSelector": {"matchLabels": {"app": "x"}}, "enableDefaultDeny": {"ingress": false, "egress": false},
                "egress": [{"toEndpoints": [{"matchLabels": {"app": "y", "k8s:io.kubernetes.pod.namespace": "a"}}], "toPorts": [{"ports": [{"port": "15008", "protocol": "TCP"}]}]}]}});
        let ns = ambient("a");
        let f = flow(&pod("a", "x"), &pod("a", "y"), 80);
        let m = Model::new([&deny, &ns], "istio-system");
        assert!(matches!(m.check(&f), Verdict::Denied { layer: "Cilium", .. }));
        let m = Model::new([&deny, &ns, &allow_in, &allow_out], "istio-system");
        assert_eq!(m.check(&f), Verdict::Allowed);
        // Outside the mesh the wire port is the target port: 15008 does not admit it.
        let m = Model::new([&deny, &allow_in, &allow_out], "istio-system");
        assert!(!m.check(&f).allowed());
        // Another namespace's pod with the same labels is not admitted by a namespaced rule.
        let other = ambient("b");
        let m = Model::new([&deny, &ns, &other, &allow_in, &allow_out], "istio-system");
        assert!(!m.check(&flow(&pod("b", "x"), &pod("a", "y"), 80)).allowed());
    }

    #[test]
    fn ztunnel_allow_policies_admit_only_their_principals() {
        let ap = json!({"kind": "AuthorizationPolicy", "metadata": {"name": "l4", "namespace": "a"},
            "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "y"}},
                "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/x"]}}], "to": [{"operation": {"ports": ["80"]}}]}]}});
        let ns = ambient("a");
        let m = Model::new([&ap, &ns], "istio-system");
        assert!(m.check(&flow(&pod("a", "x"), &pod("a", "y"), 80)).allowed());
        assert!(!m.check(&flow(&pod("a", "z"), &pod("a", "y"), 80)).allowed());
        assert!(!m.check(&flow(&pod("a", "x"), &pod("a", "y"), 81)).allowed());
    }

    #[test]
    fn an_l7_rule_never_matches_at_ztunnel() {
        let ap = json!({"kind": "AuthorizationPolicy", "metadata": {"name": "l7", "namespace": "a"},
            "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "y"}},
                "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}});
        let ns = ambient("a");
        let m = Model::new([&ap, &ns], "istio-system");
        let mut f = flow(&pod("a", "x"), &pod("a", "y"), 80);
        f.method = Some("GET".into());
        assert!(matches!(m.check(&f), Verdict::Denied { layer: "ztunnel", .. }));
    }

    #[test]
    fn a_bound_service_goes_through_its_waypoint() {
        let svc = json!({"kind": "Service", "metadata": {"name": "y", "namespace": "a", "labels": {"istio.io/use-waypoint": "wp"}},
            "status": {"conditions": [{"type": "istio.io/WaypointBound", "status": "True"}]}});
        let gw = json!({"kind": "Gateway", "metadata": {"name": "wp", "namespace": "a", "generation": 1},
            "status": {"conditions": [{"type": "Programmed", "status": "True", "observedGeneration": 1}]}});
        let l7 = json!({"kind": "AuthorizationPolicy", "metadata": {"name": "l7", "namespace": "a"},
            "spec": {"action": "ALLOW", "targetRefs": [{"kind": "Service", "group": "", "name": "y"}],
                "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/x"]}}], "to": [{"operation": {"methods": ["GET"], "paths": ["/"]}}]}]}});
        let l4 = json!({"kind": "AuthorizationPolicy", "metadata": {"name": "l4", "namespace": "a"},
            "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "y"}},
                "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/wp"]}}]}]}});
        let ns = ambient("a");
        let mut f = flow(&pod("a", "x"), &pod("a", "y"), 80);
        f.service = Some("y".into());
        f.method = Some("GET".into());
        f.path = Some("/".into());
        let m = Model::new([&ns, &svc, &gw, &l7, &l4], "istio-system");
        assert_eq!(m.check(&f), Verdict::Allowed);
        f.method = Some("POST".into());
        assert!(matches!(m.check(&f), Verdict::Denied { layer: "waypoint", .. }));
        // Pod IPs bypass the waypoint, and the narrowed L4 policy stops them.
        f.service = None;
        assert!(matches!(m.check(&f), Verdict::Denied { layer: "ztunnel", .. }));
        // A bound waypoint that is not ready is an outage.
        let mut not_ready = gw.clone();
        not_ready["status"] = json!({});
        f.service = Some("y".into());
        f.method = Some("GET".into());
        let m = Model::new([&ns, &svc, &not_ready, &l7, &l4], "istio-system");
        assert!(matches!(m.check(&f), Verdict::Denied { layer: "waypoint", .. }));
    }
}
