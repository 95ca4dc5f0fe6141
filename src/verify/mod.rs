//! Reachability: whether a flow between two pods is allowed by a set of
//! Cilium, Istio ambient and Gateway API objects, and which layer and
//! object decides it, with the semantics of DOMAIN.md ("Reachability
//! semantics"). It reads objects as JSON, so it judges ztp's own output,
//! a live cluster's state, or hand-written YAML alike — never the IR.
//!
//! A flow is a sequence of hops. A client whose Service is bound to a
//! waypoint (the Service reports `istio.io/WaypointBound`, or the
//! namespace's `istio.io/use-waypoint`) reaches the waypoint, which
//! enforces the L7 policy with the client's identity and opens a second
//! hop as itself; a client that addresses pod IPs goes direct. Between two
//! ambient pods a hop travels as HBONE on port 15008, so Cilium sees 15008
//! and ztunnel sees the target port. Per hop: the source's Cilium egress,
//! the destination's Cilium ingress, then ztunnel's policy at the
//! destination (STRICT implicit deny, DENY before ALLOW, L4 attributes
//! only). Egress to the world is Cilium's alone: entities, CIDRs with
//! `except`, and FQDN rules, which match only names one of the endpoint's
//! DNS rules lets it look up.

pub mod diff;
pub mod expect;
pub mod intent;
pub mod query;
pub mod report;

use crate::source::Span;
use crate::value::{Cidr, parse_cidr};
use serde_json::Value;
use std::collections::BTreeMap;

/// The pseudo label that carries a pod's namespace in Cilium selectors.
const NS_LABEL: &str = "io.kubernetes.pod.namespace";
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
        }
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
            (None, _) if self.dns_name.is_some() => self.dns_name.clone().unwrap_or_default(),
            (None, _) if self.address.is_some() => self.address.map(|a| a.addr.to_string()).unwrap_or_default(),
            (None, _) => "world".to_string(),
            (Some(ns), Some(p)) => format!("{ns}/{}", p.rsplit('/').next().unwrap_or(p)),
            (Some(ns), None) => format!("{ns}/(no identity)"),
        }
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

fn name_of(v: &Value) -> String {
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

/// The objects the model reads, by kind.
#[derive(Default)]
pub struct Model {
    cilium: Vec<Value>,
    netpol: Vec<Value>,
    authz: Vec<Value>,
    peer_auth: Vec<Value>,
    gateways: Vec<Value>,
    services: Vec<Value>,
    namespaces: Vec<Value>,
    /// Istio's root namespace.
    root: String,
    /// `Kind ns/name` → the `.ztp` line it came from (`ztp.dev/source`).
    sources: BTreeMap<String, String>,
    /// Judge the steady state a build describes: every labelled Service
    /// is bound and every waypoint ready (no controller has run).
    steady: bool,
}

impl Model {
    pub fn new<'a>(objects: impl IntoIterator<Item = &'a Value>, root_namespace: &str) -> Model {
        let mut m = Model { root: root_namespace.to_string(), ..Model::default() };
        for o in objects {
            if let Some(src) = at(o, &["metadata", "annotations", "ztp.dev/source"]).as_str() {
                m.sources.insert(name_of(o), src.to_string());
            }
            let bucket = match at(o, &["kind"]).as_str() {
                Some("CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy") => &mut m.cilium,
                Some("NetworkPolicy") => &mut m.netpol,
                Some("AuthorizationPolicy") => &mut m.authz,
                Some("PeerAuthentication") => &mut m.peer_auth,
                Some("Gateway") => &mut m.gateways,
                Some("Service") => &mut m.services,
                Some("Namespace") => &mut m.namespaces,
                _ => continue,
            };
            bucket.push(o.clone());
        }
        m
    }

    /// The model of a build's output, once the controllers have caught up.
    pub fn steady<'a>(objects: impl IntoIterator<Item = &'a Value>, root_namespace: &str) -> Model {
        Model { steady: true, ..Model::new(objects, root_namespace) }
    }

    /// The `.ztp` line an object came from, for objects ztp emitted.
    pub fn source_of(&self, object: &str) -> Option<&str> {
        self.sources.get(object).map(String::as_str)
    }

    fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespaces
            .iter()
            .find(|n| at(n, &["metadata", "name"]).as_str() == Some(ns))
            .and_then(|n| at(n, &["metadata", "labels"]).as_object())
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default()
    }

    /// A pod in the ambient mesh: its namespace is enrolled (and it is no proxy).
    fn ambient(&self, e: &Endpoint) -> bool {
        let Some(ns) = &e.namespace else { return false };
        !e.proxy
            && self.namespace_labels(ns).get("istio.io/dataplane-mode").map(String::as_str) == Some("ambient")
            && e.labels.get("istio.io/dataplane-mode").map(String::as_str) != Some("none")
    }

    /// Speaks HBONE: an ambient pod or one of Istio's proxies in an enrolled namespace.
    fn meshed(&self, e: &Endpoint) -> bool {
        self.ambient(e)
            || (e.proxy
                && e.namespace.as_ref().is_some_and(|ns| {
                    self.namespace_labels(ns).get("istio.io/dataplane-mode").map(String::as_str) == Some("ambient")
                }))
    }

    /// The waypoint a Service-addressed flow passes, and whether it is ready.
    fn waypoint_of(&self, f: &Flow) -> Option<(Endpoint, Option<&Value>)> {
        let ns = f.dst.namespace.as_deref()?;
        let svc_name = f.service.as_deref()?;
        let svc = self.services.iter().find(|s| {
            at(s, &["metadata", "namespace"]).as_str() == Some(ns)
                && at(s, &["metadata", "name"]).as_str() == Some(svc_name)
        })?;
        let bound = (self.steady && !at(svc, &["metadata", "labels", "istio.io/use-waypoint"]).is_null())
            || list(at(svc, &["status", "conditions"])).iter().any(|c| {
                at(c, &["type"]).as_str() == Some("istio.io/WaypointBound")
                    && at(c, &["status"]).as_str() == Some("True")
            });
        if !bound {
            return None;
        }
        // An ingress gateway skips the waypoint unless the Service asks for it.
        if f.src.proxy
            && f.src.labels.contains_key("gateway.networking.k8s.io/gateway-name")
            && at(svc, &["metadata", "labels", "istio.io/ingress-use-waypoint"]).as_str() != Some("true")
        {
            return None;
        }
        let name = at(svc, &["metadata", "labels", "istio.io/use-waypoint"])
            .as_str()
            .map(str::to_string)
            .or_else(|| self.namespace_labels(ns).get("istio.io/use-waypoint").cloned())?;
        let gateway = self.gateways.iter().find(|g| {
            at(g, &["metadata", "namespace"]).as_str() == Some(ns)
                && at(g, &["metadata", "name"]).as_str() == Some(&name)
        });
        let trust_domain = f
            .dst
            .principal
            .as_deref()
            .and_then(|p| p.split_once("/ns/"))
            .map_or("cluster.local", |(td, _)| td)
            .to_string();
        let endpoint = Endpoint {
            proxy: true,
            ..Endpoint::pod(
                ns,
                BTreeMap::from([("gateway.networking.k8s.io/gateway-name".to_string(), name.clone())]),
                Some(format!("{trust_domain}/ns/{ns}/sa/{name}")),
            )
        };
        Some((endpoint, gateway))
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
            Some((wp, gateway)) => {
                let ready = (self.steady && gateway.is_some())
                    || gateway.is_some_and(|g| {
                        list(at(g, &["status", "conditions"])).iter().any(|c| {
                            at(c, &["type"]).as_str() == Some("Programmed")
                                && at(c, &["status"]).as_str() == Some("True")
                                && at(c, &["observedGeneration"]) == at(g, &["metadata", "generation"])
                        })
                    });
                let what = wp.labels.values().next().cloned().unwrap_or_default();
                let gw = format!("Gateway {}/{what}", wp.namespace.clone().unwrap_or_default());
                let mut routing = if ready {
                    pass("waypoint", Some(gw), "the Service is bound to this waypoint: the flow passes it")
                } else {
                    stop("waypoint", gw, "the Service is bound to a waypoint that is not ready")
                };
                routing.hop = format!("{} -> {}", f.src.describe(), f.dst.describe());
                steps.push(routing);
                if ready && self.hop(&f.src, &wp, f.port, true, &mut steps) {
                    let mut l7 = self.waypoint_policy(f, &wp);
                    l7.hop = format!("{} -> {}", f.src.describe(), wp.describe());
                    let through = l7.allowed;
                    steps.push(l7);
                    if through {
                        self.hop(&wp, &f.dst, f.port, false, &mut steps);
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
        let mut layers = vec![self.cilium(a, b, wire, Direction::Egress)];
        if layers.iter().all(|s| s.allowed) {
            layers.push(self.cilium(b, a, wire, Direction::Ingress));
        }
        if layers.iter().all(|s| s.allowed) && self.ambient(b) {
            layers.push(self.ztunnel(a, b, port, hbone));
        }
        let ok = layers.iter().all(|s| s.allowed);
        steps.extend(layers.into_iter().map(|mut s| {
            s.hop = name.clone();
            s
        }));
        ok
    }

    fn cilium(&self, e: &Endpoint, peer: &Endpoint, port: u16, d: Direction) -> Step {
        let dir = if d == Direction::Ingress { "ingress" } else { "egress" };
        if e.namespace.is_none() {
            return pass("Cilium", None, format!("{dir}: outside the cluster, no Cilium endpoint"));
        }
        let selecting: Vec<&Value> = self.cilium.iter().filter(|p| cilium_selects(p, e)).collect();
        // FQDN rules match only names the endpoint's DNS rules let it look up.
        let resolvable = peer.dns_name.as_deref().is_some_and(|n| {
            selecting.iter().any(|p| {
                list(at(p, &["spec", "egress"])).iter().any(|r| {
                    list(at(r, &["toPorts"]))
                        .iter()
                        .any(|tp| list(at(tp, &["rules", "dns"])).iter().any(|d| dns_rule_matches(d, n)))
                })
            })
        });
        let (allow_key, deny_key, dd_key) = match d {
            Direction::Ingress => ("ingress", "ingressDeny", "ingress"),
            Direction::Egress => ("egress", "egressDeny", "egress"),
        };
        for p in &selecting {
            for rule in list(at(p, &["spec", deny_key])) {
                if cilium_rule_matches(p, rule, peer, port, d, false) {
                    return stop("Cilium", name_of(p), format!("{deny_key} matches {}", peer.describe()));
                }
            }
        }
        let mut default_deny: Option<String> = None;
        let mut near_miss: Option<(String, String)> = None;
        for p in &selecting {
            let has_section =
                !list(at(p, &["spec", allow_key])).is_empty() || !list(at(p, &["spec", deny_key])).is_empty();
            let opted_out = at(p, &["spec", "enableDefaultDeny", dd_key]).as_bool() == Some(false);
            if has_section && !opted_out && default_deny.is_none() {
                default_deny = Some(name_of(p));
            }
            for rule in list(at(p, &["spec", allow_key])) {
                if cilium_rule_matches(p, rule, peer, port, d, resolvable) {
                    return pass(
                        "Cilium",
                        Some(name_of(p)),
                        format!("{dir}: a rule admits {} on port {port}", peer.describe()),
                    );
                }
                // Near misses name the culprit better than the default deny.
                if near_miss.is_none() {
                    if !resolvable && cilium_rule_matches(p, rule, peer, port, d, true) {
                        near_miss = Some((
                            name_of(p),
                            format!(
                                "its toFQDNs rule matches {}, but no DNS rule of {} lets it look the name up",
                                peer.describe(),
                                e.describe()
                            ),
                        ));
                    } else if cilium_rule_matches(p, rule, peer, 0, d, resolvable) {
                        near_miss =
                            Some((name_of(p), format!("a rule admits {} but not on port {port}", peer.describe())));
                    }
                }
            }
        }
        for np in self.netpol.iter().filter(|p| netpol_selects(p, e)) {
            let types: Vec<&str> = list(at(np, &["spec", "policyTypes"])).iter().filter_map(Value::as_str).collect();
            let applies = match d {
                Direction::Ingress => types.is_empty() || types.contains(&"Ingress"),
                Direction::Egress => types.contains(&"Egress"),
            };
            if !applies {
                continue;
            }
            if default_deny.is_none() {
                default_deny = Some(name_of(np));
            }
            let key = if d == Direction::Ingress { "ingress" } else { "egress" };
            if list(at(np, &["spec", key])).iter().any(|r| netpol_rule_matches(np, r, peer, port, d)) {
                return pass(
                    "Cilium",
                    Some(name_of(np)),
                    format!("{dir}: a rule admits {} on port {port}", peer.describe()),
                );
            }
        }
        if let (Some(dd), Some((obj, why))) = (&default_deny, near_miss) {
            return stop("Cilium", obj, format!("{dir} of {} is default deny ({dd}); {why}", e.describe()));
        }
        match default_deny {
            Some(obj) => stop(
                "Cilium",
                obj,
                format!(
                    "{dir} of {} is default deny and no rule admits {} on port {port}",
                    e.describe(),
                    peer.describe()
                ),
            ),
            None => pass("Cilium", None, format!("{dir}: no policy puts {} into default deny", e.describe())),
        }
    }

    /// ztunnel's inbound policy at `b` for a connection from `a`.
    fn ztunnel(&self, a: &Endpoint, b: &Endpoint, port: u16, hbone: bool) -> Step {
        let ns = b.namespace.as_deref().unwrap_or("");
        let identity = if hbone { a.principal.as_deref() } else { None };
        if identity.is_none() && self.strict(ns, b) {
            return stop("ztunnel", "PeerAuthentication (STRICT)", format!("{} has no mesh identity", a.describe()));
        }
        let policies: Vec<&Value> = self
            .authz
            .iter()
            .filter(|p| {
                let pns = at(p, &["metadata", "namespace"]).as_str();
                (pns == Some(ns) || pns == Some(self.root.as_str()))
                    && at(p, &["spec", "targetRefs"]).is_null()
                    && at(p, &["spec", "targetRef"]).is_null()
                    && labels_match(at(p, &["spec", "selector", "matchLabels"]), &b.labels)
            })
            .collect();
        let q = Request {
            principal: identity,
            namespace: identity.and(a.namespace.as_deref()),
            address: a.address,
            port,
            method: None,
            path: None,
        };
        authorize("ztunnel", &policies, &q, true)
    }

    fn strict(&self, ns: &str, b: &Endpoint) -> bool {
        let mode = |p: &Value| at(p, &["spec", "mtls", "mode"]).as_str().map(str::to_string);
        let workload = self.peer_auth.iter().find(|p| {
            at(p, &["metadata", "namespace"]).as_str() == Some(ns)
                && !at(p, &["spec", "selector"]).is_null()
                && labels_match(at(p, &["spec", "selector", "matchLabels"]), &b.labels)
        });
        let namespace = self
            .peer_auth
            .iter()
            .find(|p| at(p, &["metadata", "namespace"]).as_str() == Some(ns) && at(p, &["spec", "selector"]).is_null());
        let mesh = self.peer_auth.iter().find(|p| {
            at(p, &["metadata", "namespace"]).as_str() == Some(self.root.as_str())
                && at(p, &["spec", "selector"]).is_null()
        });
        let effective = [workload, namespace, mesh].into_iter().flatten().filter_map(mode).find(|m| m != "UNSET");
        effective.as_deref() == Some("STRICT")
    }

    /// The waypoint's policy for a flow through it: targetRefs to the
    /// Service or the waypoint, full L7, the client's identity.
    fn waypoint_policy(&self, f: &Flow, wp: &Endpoint) -> Step {
        let ns = f.dst.namespace.as_deref().unwrap_or("");
        let wp_name = wp.labels.values().next().map(String::as_str).unwrap_or("");
        let svc = f.service.as_deref().unwrap_or("");
        let policies: Vec<&Value> = self
            .authz
            .iter()
            .filter(|p| {
                at(p, &["metadata", "namespace"]).as_str() == Some(ns)
                    && list(at(p, &["spec", "targetRefs"]))
                        .iter()
                        .chain(std::iter::once(at(p, &["spec", "targetRef"])))
                        .any(|t| {
                            let kind = at(t, &["kind"]).as_str();
                            let name = at(t, &["name"]).as_str();
                            (kind == Some("Service") && name == Some(svc))
                                || (kind == Some("Gateway") && name == Some(wp_name))
                        })
            })
            .collect();
        let q = Request {
            principal: f.src.principal.as_deref(),
            namespace: f.src.namespace.as_deref(),
            address: f.src.address,
            port: f.port,
            method: f.method.as_deref(),
            path: f.path.as_deref(),
        };
        authorize("waypoint", &policies, &q, false)
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

/// An endpoint's labels as Cilium sees them: its pod labels and its
/// namespace as `io.kubernetes.pod.namespace`.
fn cilium_labels(e: &Endpoint) -> BTreeMap<String, String> {
    let mut l = e.labels.clone();
    if let Some(ns) = &e.namespace {
        l.insert(NS_LABEL.to_string(), ns.clone());
    }
    l
}

fn strip_source(k: &str) -> &str {
    k.strip_prefix("k8s:").or_else(|| k.strip_prefix("any:")).unwrap_or(k)
}

/// A Cilium endpoint selector; in a namespaced policy, peers and subjects
/// are confined to its namespace unless the selector names one.
fn cilium_selector_matches(sel: &Value, labels: &BTreeMap<String, String>, confine: Option<&str>) -> bool {
    let mut names_namespace = false;
    let ok_labels = at(sel, &["matchLabels"]).as_object().is_none_or(|m| {
        m.iter().all(|(k, v)| {
            let k = strip_source(k);
            names_namespace |= k == NS_LABEL;
            labels.get(k).map(String::as_str) == v.as_str()
        })
    });
    let ok_exprs = list(at(sel, &["matchExpressions"])).iter().all(|e| {
        let key = strip_source(at(e, &["key"]).as_str().unwrap_or(""));
        names_namespace |= key == NS_LABEL;
        let values: Vec<&str> = list(at(e, &["values"])).iter().filter_map(Value::as_str).collect();
        let have = labels.get(key).map(String::as_str);
        match at(e, &["operator"]).as_str() {
            Some("In") => have.is_some_and(|h| values.contains(&h)),
            Some("NotIn") => have.is_none_or(|h| !values.contains(&h)),
            Some("Exists") => have.is_some(),
            Some("DoesNotExist") => have.is_none(),
            _ => false,
        }
    });
    let confined = match confine {
        Some(ns) if !names_namespace => labels.get(NS_LABEL).map(String::as_str) == Some(ns),
        _ => true,
    };
    ok_labels && ok_exprs && confined
}

fn cilium_selects(p: &Value, e: &Endpoint) -> bool {
    let confine = at(p, &["metadata", "namespace"]).as_str();
    let labels = cilium_labels(e);
    if confine.is_some() && e.namespace.as_deref() != confine {
        return false;
    }
    cilium_selector_matches(at(p, &["spec", "endpointSelector"]), &labels, None)
}

/// Whether a rule's `toPorts` admit `port`; port 0 asks about any port
/// (an `expect` toward an external destination without one).
fn ports_match(to_ports: &Value, port: u16) -> bool {
    if to_ports.is_null() || port == 0 {
        return true;
    }
    list(to_ports).iter().any(|tp| {
        list(at(tp, &["ports"])).iter().any(|p| {
            let number = at(p, &["port"])
                .as_str()
                .and_then(|s| s.parse::<u16>().ok())
                .or_else(|| at(p, &["port"]).as_u64().and_then(|n| u16::try_from(n).ok()));
            let end = at(p, &["endPort"]).as_u64().and_then(|n| u16::try_from(n).ok());
            let proto = at(p, &["protocol"]).as_str().unwrap_or("ANY");
            let proto_ok = matches!(proto, "TCP" | "ANY");
            match (number, end) {
                (Some(0), _) => proto_ok,
                (Some(n), Some(e)) => proto_ok && (n..=e).contains(&port),
                (Some(n), None) => proto_ok && n == port,
                (None, _) => false,
            }
        })
    })
}

fn cidr_of(v: &Value) -> Option<Cidr> {
    parse_cidr(v.as_str()?, Span::default()).ok()
}

fn address_in(set: &Value, address: Option<Cidr>) -> bool {
    let Some(a) = address else { return false };
    let inside = cidr_of(at(set, &["cidr"])).is_some_and(|c| c.contains(&a));
    inside && !list(at(set, &["except"])).iter().filter_map(cidr_of).any(|e| e.contains(&a))
}

/// Cilium's `matchPattern`: `*` is `[-a-zA-Z0-9_]*` inside one label; a
/// pattern of stars matches every name; `**.` needs at least one label.
pub fn fqdn_pattern_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if pattern.chars().all(|c| c == '*') {
        return true;
    }
    if let Some(rest) = pattern.strip_prefix("**.") {
        return name.strip_suffix(rest).and_then(|head| head.strip_suffix('.')).is_some_and(|h| !h.is_empty());
    }
    let (p, n): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), name.split('.').collect());
    p.len() == n.len() && p.iter().zip(&n).all(|(p, n)| label_glob(p, n))
}

fn label_glob(p: &str, n: &str) -> bool {
    match p.split_once('*') {
        None => p == n,
        Some((head, tail)) => {
            let Some(rest) = n.strip_prefix(head) else { return false };
            (0..=rest.len()).filter(|i| rest.is_char_boundary(*i)).any(|i| {
                rest.get(..i).is_some_and(|m| m.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                    && rest.get(i..).is_some_and(|r| label_glob(tail, r))
            })
        }
    }
}

fn dns_rule_matches(d: &Value, name: &str) -> bool {
    at(d, &["matchName"]).as_str().is_some_and(|m| m.trim_end_matches('.').eq_ignore_ascii_case(name))
        || at(d, &["matchPattern"]).as_str().is_some_and(|p| fqdn_pattern_matches(p, name))
}

fn cilium_rule_matches(p: &Value, rule: &Value, peer: &Endpoint, port: u16, d: Direction, resolvable: bool) -> bool {
    let confine = at(p, &["metadata", "namespace"]).as_str();
    let (endpoints_key, entities_key, cidr_key, cidrset_key) = match d {
        Direction::Ingress => ("fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet"),
        Direction::Egress => ("toEndpoints", "toEntities", "toCIDR", "toCIDRSet"),
    };
    let labels = cilium_labels(peer);
    let peer_ok = if peer.namespace.is_some() {
        list(at(rule, &[endpoints_key])).iter().any(|s| cilium_selector_matches(s, &labels, confine))
            || list(at(rule, &[entities_key])).iter().any(|e| matches!(e.as_str(), Some("cluster" | "all")))
    } else {
        let fqdn = resolvable
            && peer
                .dns_name
                .as_deref()
                .is_some_and(|n| list(at(rule, &["toFQDNs"])).iter().any(|f| dns_rule_matches(f, n)));
        let unknown_address = peer.address.is_none() && peer.dns_name.is_none();
        list(at(rule, &[entities_key])).iter().any(|e| matches!(e.as_str(), Some("world" | "all")))
            || list(at(rule, &[cidr_key])).iter().any(|c| {
                cidr_of(c)
                    .is_some_and(|c| peer.address.is_some_and(|a| c.contains(&a)) || (unknown_address && c.prefix == 0))
            })
            || list(at(rule, &[cidrset_key])).iter().any(|c| {
                address_in(c, peer.address)
                    || (unknown_address && cidr_of(at(c, &["cidr"])).is_some_and(|c| c.prefix == 0))
            })
            || fqdn
    };
    peer_ok && ports_match(at(rule, &["toPorts"]), port)
}

fn netpol_selects(p: &Value, e: &Endpoint) -> bool {
    e.namespace.as_deref() == at(p, &["metadata", "namespace"]).as_str()
        && labels_match(at(p, &["spec", "podSelector", "matchLabels"]), &e.labels)
}

fn netpol_rule_matches(p: &Value, rule: &Value, peer: &Endpoint, port: u16, d: Direction) -> bool {
    let key = if d == Direction::Ingress { "from" } else { "to" };
    let own = at(p, &["metadata", "namespace"]).as_str();
    let peers = list(at(rule, &[key]));
    let peer_ok = at(rule, &[key]).is_null()
        || peers.iter().any(|x| {
            let ns_sel = at(x, &["namespaceSelector"]);
            let pod_sel = at(x, &["podSelector"]);
            if peer.namespace.is_none() {
                return false;
            }
            let ns_ok = if ns_sel.is_null() {
                peer.namespace.as_deref() == own
            } else {
                let mut l = BTreeMap::new();
                l.insert("kubernetes.io/metadata.name".to_string(), peer.namespace.clone().unwrap_or_default());
                labels_match(at(ns_sel, &["matchLabels"]), &l)
            };
            ns_ok && (pod_sel.is_null() || labels_match(at(pod_sel, &["matchLabels"]), &peer.labels))
        });
    let ports = list(at(rule, &["ports"]));
    let port_ok = at(rule, &["ports"]).is_null()
        || ports.iter().any(|p| {
            at(p, &["port"]).as_u64() == Some(u64::from(port)) || at(p, &["port"]).as_str() == Some(&port.to_string())
        });
    peer_ok && port_ok
}

/// Istio's evaluation: a matching DENY denies; if any ALLOW policy applies,
/// one of its rules must match; else allow. `l4_only` is ztunnel, which
/// cannot see L7 attributes: a rule that needs them never matches.
#[allow(clippy::too_many_arguments)]
fn authorize(layer: &'static str, policies: &[&Value], q: &Request<'_>, l4_only: bool) -> Step {
    let action = |p: &Value| at(p, &["spec", "action"]).as_str().unwrap_or("ALLOW").to_string();
    let (principal, port, method, path) = (q.principal, q.port, q.method, q.path);
    // Dry-run policies are never enforced; AUDIT never decides; CUSTOM
    // (an external authorizer) is not sent to ztunnel and is not modelled.
    let enforced: Vec<&&Value> = policies
        .iter()
        .filter(|p| at(p, &["metadata", "annotations", "istio.io/dry-run"]).as_str() != Some("true"))
        .filter(|p| matches!(action(p).as_str(), "ALLOW" | "DENY"))
        .collect();
    for p in enforced.iter().filter(|p| action(p) == "DENY") {
        if list(at(p, &["spec", "rules"])).iter().any(|r| istio_rule_matches(r, q, true, l4_only)) {
            return stop(layer, name_of(p), "a DENY rule matches");
        }
    }
    let allows: Vec<&&&Value> = enforced.iter().filter(|p| action(p) == "ALLOW").collect();
    let rule_matches = |r: &Value| istio_rule_matches(r, q, false, l4_only);
    let who = principal.unwrap_or("a peer without identity");
    if allows.is_empty() {
        return pass(layer, None, "no ALLOW policy applies");
    }
    if let Some(p) = allows.iter().find(|p| list(at(p, &["spec", "rules"])).iter().any(rule_matches)) {
        return pass(layer, Some(name_of(p)), format!("a rule admits {who} on port {port}"));
    }
    let names: Vec<String> = allows.iter().map(|p| name_of(p)).collect();
    stop(
        layer,
        names.join(", "),
        format!(
            "ALLOW policies apply and none admits {} on port {port}{}",
            who,
            method.map(|m| format!(" ({m} {})", path.unwrap_or("/"))).unwrap_or_default()
        ),
    )
}

fn strings(v: &Value) -> Vec<&str> {
    list(v).iter().filter_map(Value::as_str).collect()
}

fn glob(pattern: &str, s: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return s.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return s.ends_with(suffix);
    }
    pattern == s
}

/// Source and operation fields ztunnel cannot see (L7 to it), and the
/// `when` keys it can.
const L7_SOURCE: &[&str] = &["requestPrincipals", "notRequestPrincipals", "remoteIpBlocks", "notRemoteIpBlocks"];
const L7_OPERATION: &[&str] = &["methods", "paths", "hosts", "notMethods", "notPaths", "notHosts"];
const L4_WHEN: &[&str] = &["source.ip", "source.namespace", "source.principal", "destination.ip", "destination.port"];

/// What a rule asks of a request.
struct Request<'a> {
    principal: Option<&'a str>,
    namespace: Option<&'a str>,
    /// An external peer's address (pods' addresses are not modelled).
    address: Option<Cidr>,
    port: u16,
    method: Option<&'a str>,
    path: Option<&'a str>,
}

fn has_any(entry: &Value, keys: &[&str]) -> bool {
    keys.iter().any(|k| !at(entry, &[k]).is_null())
}

/// Whether the rule carries anything ztunnel reads as L7.
fn rule_has_l7(r: &Value) -> bool {
    list(at(r, &["from"])).iter().any(|f| has_any(at(f, &["source"]), L7_SOURCE))
        || list(at(r, &["to"])).iter().any(|t| has_any(at(t, &["operation"]), L7_OPERATION))
        || list(at(r, &["when"])).iter().any(|w| !at(w, &["key"]).as_str().is_some_and(|k| L4_WHEN.contains(&k)))
}

/// Istio's rule match: `from`, `to` and `when` AND'ed, entries of each
/// OR'ed, fields of an entry AND'ed. At ztunnel (`l4_only`), as its
/// `handleRule` does: an ALLOW rule with any L7 field never matches; a DENY
/// rule loses its L7 fields, and never matches if an entry had only L7
/// fields; `trustDomains` is dropped (an entry left empty matches all).
fn istio_rule_matches(r: &Value, q: &Request<'_>, deny: bool, l4_only: bool) -> bool {
    if l4_only && !deny && rule_has_l7(r) {
        return false;
    }
    let field_ok = |e: &Value, k: &str, value: Option<&str>, negate: bool| {
        let v = at(e, &[k]);
        if v.is_null() {
            return true;
        }
        let hit = value.is_some_and(|x| strings(v).iter().any(|p| glob(p, x)));
        if negate { !hit } else { hit }
    };
    let ip_ok = |e: &Value, k: &str, negate: bool| {
        let v = at(e, &[k]);
        if v.is_null() {
            return true;
        }
        let hit = q.address.is_some_and(|a| list(v).iter().filter_map(cidr_of).any(|c| c.contains(&a)));
        if negate { !hit } else { hit }
    };
    let source_ok = |e: &Value| {
        let e = at(e, &["source"]);
        if l4_only
            && has_any(e, L7_SOURCE)
            && !has_any(
                e,
                &[
                    "principals",
                    "notPrincipals",
                    "namespaces",
                    "notNamespaces",
                    "ipBlocks",
                    "notIpBlocks",
                    "serviceAccounts",
                    "notServiceAccounts",
                ],
            )
        {
            // Only L7 fields: ztunnel drops the whole rule.
            return None;
        }
        let sa = q.principal.and_then(|p| p.split_once("/ns/")).map(|(_, rest)| rest.replacen("/sa/", "/", 1));
        Some(
            field_ok(e, "principals", q.principal, false)
                && field_ok(e, "notPrincipals", q.principal, true)
                && field_ok(e, "namespaces", q.namespace, false)
                && field_ok(e, "notNamespaces", q.namespace, true)
                && field_ok(e, "serviceAccounts", sa.as_deref(), false)
                && field_ok(e, "notServiceAccounts", sa.as_deref(), true)
                && (l4_only || at(e, &["requestPrincipals"]).is_null())
                && ip_ok(e, "ipBlocks", false)
                && ip_ok(e, "notIpBlocks", true)
                && (l4_only || at(e, &["remoteIpBlocks"]).is_null()),
        )
    };
    let operation_ok = |e: &Value| {
        let o = at(e, &["operation"]);
        if l4_only && has_any(o, L7_OPERATION) && !has_any(o, &["ports", "notPorts"]) {
            return None;
        }
        let port = q.port.to_string();
        let ports_ok =
            at(o, &["ports"]).is_null() || q.port == 0 || strings(at(o, &["ports"])).contains(&port.as_str());
        let not_ports_ok = !strings(at(o, &["notPorts"])).contains(&port.as_str());
        if l4_only {
            return Some(ports_ok && not_ports_ok);
        }
        Some(
            ports_ok
                && not_ports_ok
                && field_ok(o, "methods", q.method, false)
                && field_ok(o, "notMethods", q.method, true)
                && field_ok(o, "paths", q.path, false)
                && field_ok(o, "notPaths", q.path, true),
        )
    };
    let when_ok = |w: &Value| {
        let key = at(w, &["key"]).as_str().unwrap_or("");
        let value = match key {
            "source.namespace" => q.namespace.map(str::to_string),
            "source.principal" => q.principal.map(str::to_string),
            "destination.port" => Some(q.port.to_string()),
            _ if l4_only && !L4_WHEN.contains(&key) => return None,
            _ => None,
        };
        let values = strings(at(w, &["values"]));
        let not_values = strings(at(w, &["notValues"]));
        let hit = |vs: &[&str]| value.as_deref().is_some_and(|v| vs.iter().any(|p| glob(p, v)));
        Some((values.is_empty() || hit(&values)) && !hit(&not_values))
    };
    // A clause list matches when absent, or when any entry matches; an
    // entry ztunnel cannot read makes the whole rule never match.
    let clause = |key: &str, f: &dyn Fn(&Value) -> Option<bool>| -> Option<bool> {
        let v = at(r, &[key]);
        if v.is_null() {
            return Some(true);
        }
        let mut any = false;
        for e in list(v) {
            match f(e) {
                None => return None,
                Some(m) => any |= m,
            }
        }
        Some(any)
    };
    let all_when = || -> Option<bool> {
        let mut ok = true;
        for w in list(at(r, &["when"])) {
            ok &= when_ok(w)?;
        }
        Some(ok)
    };
    match (clause("from", &source_ok), clause("to", &operation_ok), all_when()) {
        (Some(a), Some(b), Some(c)) => a && b && c,
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
        Flow { src: src.clone(), dst: dst.clone(), service: None, port, method: None, path: None }
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
        let to = |dst: Endpoint, port| Flow { src: x.clone(), dst, service: None, port, method: None, path: None };
        let github = to(Endpoint::external_name("api.github.com"), 443);
        let m = Model::new([&deny, &fqdn(json!([{"matchName": "api.github.com"}]))], "istio-system");
        assert!(m.check(&github).allowed());
        assert!(!m.check(&to(Endpoint::external_name("api.cloudflare.com"), 443)).allowed());
        let m = Model::new([&deny, &fqdn(json!([{"matchPattern": "*.example.com"}]))], "istio-system");
        assert!(!m.check(&github).allowed(), "no DNS rule lets it resolve the name");
        let ip = |s: &str| Endpoint::external_address(parse_cidr(s, Span::default()).unwrap());
        assert!(m.check(&to(ip("10.2.3.4/32"), 5432)).allowed());
        assert!(!m.check(&to(ip("10.1.3.4/32"), 5432)).allowed(), "except");
        let meta = json!({"kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "meta"},
            "spec": {"endpointSelector": {}, "enableDefaultDeny": {"egress": false, "ingress": false},
                "egressDeny": [{"toCIDRSet": [{"cidr": "10.2.0.0/16"}]}]}});
        let m = Model::new([&deny, &meta, &fqdn(json!([{"matchName": "api.github.com"}]))], "istio-system");
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
        let m = Model::steady([&ambient("a"), &svc, &gw, &deny_all], "istio-system");
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
        let m = Model::new([&deny, &ns, &ambient("b"), &allow_in, &allow_out], "istio-system");
        assert!(!m.check(&flow(&pod("b", "x"), &pod("a", "y"), 80)).allowed());
    }

    #[test]
    fn ztunnel_allow_policies_admit_only_their_principals() {
        let ap = json!({"kind": "AuthorizationPolicy", "metadata": {"name": "l4", "namespace": "a"},
            "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "y"}},
                "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/x"]}}], "to": [{"operation": {"ports": ["80"]}}]}]}});
        let m = Model::new([&ap, &ambient("a")], "istio-system");
        assert!(m.check(&flow(&pod("a", "x"), &pod("a", "y"), 80)).allowed());
        assert!(!m.check(&flow(&pod("a", "z"), &pod("a", "y"), 80)).allowed());
        assert!(!m.check(&flow(&pod("a", "x"), &pod("a", "y"), 81)).allowed());
    }

    #[test]
    fn an_l7_rule_never_matches_at_ztunnel() {
        let ap = json!({"kind": "AuthorizationPolicy", "metadata": {"name": "l7", "namespace": "a"},
            "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "y"}},
                "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}});
        let m = Model::new([&ap, &ambient("a")], "istio-system");
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
