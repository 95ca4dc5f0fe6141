//! Cilium: the cluster baseline (CCNPs), one CNP per workload, gateway and
//! waypoint, one per namespace for `namespace(x)` sources, and the baseline
//! default deny.
//!
//! Mesh traffic reaches Cilium as HBONE: `client pod → destination pod (or
//! its waypoint):15008`, never the application port. So a flow becomes a
//! 15008 rule on the client's egress and on the destination's (or the
//! waypoint's) ingress; only traffic outside the mesh (ingress gateways'
//! listeners, FQDN and CIDR egress) uses real ports. Every allow policy sets
//! `enableDefaultDeny: {ingress: false, egress: false}`: default deny is the
//! job of the last layer alone, so applying allows never denies anything.
//! No policy is emitted with an empty section (Cilium's agent rejects it and
//! enforces nothing), and no rule has ports without a peer or a peer without
//! ports unless it is meant to (the probe allow).

use super::{Meta, obj, owned, spec};
use crate::hir::HboneMode;
use crate::ir::{CidrSet, Dest, Flow, FlowIndex, Ir, Peer, Workload};
use crate::manifest::{Layer, Manifest};
use crate::value::DnsName;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const API: &str = "cilium.io/v2";
const NS_LABEL: &str = "k8s:io.kubernetes.pod.namespace";
/// Istio labels the pods of every Gateway (ingress and waypoint) with it.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
pub const HBONE_PORT: u16 = 15008;
pub const ISTIOD_XDS_PORT: u16 = 15012;
/// The API server's ports: the Service's and the usual host port.
pub const KUBE_API_PORTS: [u16; 2] = [443, 6443];
/// Where waypoints (and other Istio proxies) serve merged Prometheus metrics.
pub const PROXY_METRICS_PORT: u16 = 15020;
/// The address kubelet probes to ambient pods are SNATed to.
pub const PROBE_SNAT: &str = "169.254.7.127/32";

fn no_default_deny() -> Value {
    json!({"ingress": false, "egress": false})
}

/// Every pod outside the system namespaces. `Exists` keeps the `NotIn` from
/// matching endpoints with no namespace label (world, host).
fn baseline_selector(ir: &Ir) -> Value {
    let mut exprs = vec![json!({"key": NS_LABEL, "operator": "Exists"})];
    if !ir.cluster.system_namespaces.is_empty() {
        exprs.push(json!({"key": NS_LABEL, "operator": "NotIn", "values": ir.cluster.system_namespaces}));
    }
    json!({"matchExpressions": exprs})
}

fn kube_dns() -> Value {
    json!({"matchLabels": {NS_LABEL: "kube-system", "k8s:k8s-app": "kube-dns"}})
}

fn tcp(port: u16) -> Value {
    json!({"port": port.to_string(), "protocol": "TCP"})
}

/// Cilium takes at most 40 ports per `toPorts` entry.
const MAX_PORTS_PER_ENTRY: usize = 40;

fn ports_rule(ports: impl IntoIterator<Item = u16>) -> Value {
    // Built by moving each port's value into its entry: `json!` would
    // copy every value it is given.
    let entry = |ports: Vec<Value>| obj([("ports", Some(Value::Array(ports)))]);
    let mut entries = Vec::new();
    let mut chunk = Vec::new();
    for port in ports {
        chunk.push(tcp(port));
        if chunk.len() == MAX_PORTS_PER_ENTRY {
            entries.push(entry(std::mem::take(&mut chunk)));
        }
    }
    if !chunk.is_empty() {
        entries.push(entry(chunk));
    }
    Value::Array(entries)
}

/// DNS to kube-dns, with the DNS proxy rule that lets FQDN policy learn IPs.
fn dns_rule(names: &[Value]) -> Value {
    json!({
        "toEndpoints": [kube_dns()],
        "toPorts": [{
            "ports": [{"port": "53", "protocol": "UDP"}, {"port": "53", "protocol": "TCP"}],
            "rules": {"dns": names},
        }],
    })
}

fn dns_match(name: &DnsName) -> Value {
    match name {
        DnsName::Name(n) => json!({"matchName": n}),
        DnsName::Pattern(p) => json!({"matchPattern": p}),
    }
}

fn cidr_set(set: &CidrSet) -> Value {
    let except: Vec<String> = set.except.iter().map(ToString::to_string).collect();
    obj([("cidr", Some(json!(set.cidr.to_string()))), ("except", (!except.is_empty()).then(|| json!(except)))])
}

fn ccnp(ir: &Ir, layer: Layer, name: &str, origin: &crate::ir::Origin, body: Value) -> Manifest {
    owned(
        ir,
        Meta {
            layer,
            step: 0,
            api_version: API,
            kind: "CiliumClusterwideNetworkPolicy",
            namespace: None,
            name: format!("ztp-{}-{name}", ir.stack),
            origin,
        },
        BTreeMap::new(),
        spec(body),
    )
}

/// Layer 1: DNS, ambient probes, egress denies and (in `mesh_wide` mode)
/// the single HBONE allow.
pub fn baseline(ir: &Ir) -> Vec<Manifest> {
    let c = &ir.cluster;
    let mut out = Vec::new();
    if let Some(origin) = &c.allow_dns {
        out.push(ccnp(
            ir,
            Layer::ClusterBaseline,
            "allow-dns",
            origin,
            json!({
                "description": "ztp: DNS to kube-dns for every workload, through Cilium's DNS proxy so FQDN rules can match",
                "endpointSelector": baseline_selector(ir),
                "egress": [dns_rule(&[json!({"matchPattern": "*"})])],
                "enableDefaultDeny": no_default_deny(),
            }),
        ));
    }
    if let Some(origin) = &c.allow_ambient_probes {
        out.push(ccnp(
            ir,
            Layer::ClusterBaseline,
            "allow-ambient-probes",
            origin,
            json!({
                "description": "ztp: kubelet probes to ambient pods, which Istio SNATs to 169.254.7.127",
                "endpointSelector": baseline_selector(ir),
                "ingress": [{"fromCIDR": [PROBE_SNAT]}],
                "enableDefaultDeny": no_default_deny(),
            }),
        ));
    }
    if let Some((_, origin)) = c.deny_egress.first() {
        let sets: Vec<Value> = c.deny_egress.iter().map(|(cidr, _)| json!({"cidr": cidr.to_string()})).collect();
        out.push(ccnp(
            ir,
            Layer::ClusterBaseline,
            "deny-egress",
            origin,
            json!({
                "description": "ztp: egress denied cluster-wide (for example the cloud metadata endpoint)",
                "endpointSelector": baseline_selector(ir),
                "egressDeny": [{"toCIDRSet": sets}],
                "enableDefaultDeny": no_default_deny(),
            }),
        ));
    }
    if c.hbone == HboneMode::MeshWide {
        out.push(ccnp(
            ir,
            Layer::ClusterBaseline,
            "allow-hbone",
            &c.hbone_origin,
            json!({
                "description": "ztp: HBONE (15008) between all pods of the cluster; identity is checked by ztunnel",
                "endpointSelector": baseline_selector(ir),
                "ingress": [{"fromEntities": ["cluster"], "toPorts": ports_rule([HBONE_PORT])}],
                "egress": [{"toEntities": ["cluster"], "toPorts": ports_rule([HBONE_PORT])}],
                "enableDefaultDeny": no_default_deny(),
            }),
        ));
    }
    out
}

/// Layer 6: every pod outside the system namespaces is in default deny for
/// both directions; `ingress: [{}]` / `egress: [{}]` select the endpoints
/// with rules that allow nothing.
pub fn default_deny(ir: &Ir) -> Vec<Manifest> {
    let Some(origin) = &ir.cluster.default_deny else { return Vec::new() };
    vec![ccnp(
        ir,
        Layer::DefaultDeny,
        "default-deny",
        origin,
        json!({
            "description": "ztp: default deny, in and out, for every pod outside the system namespaces",
            "endpointSelector": baseline_selector(ir),
            "ingress": [{}],
            "egress": [{}],
        }),
    )]
}

// ------------------------------------------------------------- selectors

fn workload_pods(w: &Workload) -> Value {
    let mut labels: BTreeMap<String, String> = w.selector.clone();
    labels.insert(NS_LABEL.into(), w.namespace.clone());
    json!({"matchLabels": labels})
}

fn gateway_pods(namespace: &str, name: &str) -> Value {
    json!({"matchLabels": {NS_LABEL: namespace, GATEWAY_NAME_LABEL: name}})
}

/// Pods of a namespace but the excepted workloads. A workload is excepted
/// by the first key of its selector, which may leave out more pods than the
/// workload (never fewer): fail closed.
fn namespace_pods(ir: &Ir, namespace: &str, except: &[usize]) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("matchLabels".into(), json!({NS_LABEL: namespace}));
    let exprs = except_expressions(ir, except);
    if !exprs.is_empty() {
        m.insert("matchExpressions".into(), Value::Array(exprs));
    }
    Value::Object(m)
}

fn except_expressions(ir: &Ir, except: &[usize]) -> Vec<Value> {
    let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for w in except.iter().filter_map(|i| ir.workload(*i)) {
        if let Some((k, v)) = w.selector.iter().next() {
            by_key.entry(k.clone()).or_default().insert(v.clone());
        }
    }
    by_key.into_iter().map(|(k, vs)| json!({"key": k, "operator": "NotIn", "values": vs})).collect()
}

fn peer_pods(ir: &Ir, p: &Peer) -> Option<Value> {
    match p {
        Peer::Workload(w) => ir.workload(*w).map(workload_pods),
        Peer::Gateway(g) => ir.gateway(*g).map(|g| gateway_pods(&g.namespace, &g.name)),
        Peer::Namespace { name, except } => Some(namespace_pods(ir, name, except)),
        Peer::World | Peer::Cidr(_) => None,
    }
}

/// The pods a flow's connection arrives at: the destination's, or its
/// waypoint's.
fn next_hop(ir: &Ir, f: &Flow) -> Option<Value> {
    if let Some(wp) = f.via.and_then(|i| ir.waypoint(i)) {
        return Some(gateway_pods(&wp.namespace, &wp.name));
    }
    match &f.dst {
        Dest::Workload { workload, .. } => ir.workload(*workload).map(workload_pods),
        Dest::Gateway { gateway, .. } => ir.gateway(*gateway).map(|g| gateway_pods(&g.namespace, &g.name)),
        Dest::Fqdn { .. } | Dest::Cidr { .. } => None,
    }
}

// ----------------------------------------------------------------- rules

/// Peers of one rule, each under its JSON text: the text orders them (so
/// the output does not depend on the order flows are met) and merges equal
/// peers; the value is kept to be written out as it is.
type Peers = BTreeMap<String, Value>;

fn add_peer(peers: &mut Peers, peer: Value) {
    peers.entry(peer.to_string()).or_insert(peer);
}

/// Rules of one direction, merged: peers with the same ports share a rule.
#[derive(Default)]
struct Rules {
    /// ports → peer selectors (endpoints).
    endpoints: BTreeMap<Vec<u16>, Peers>,
    /// ports → entities.
    entities: BTreeMap<Vec<u16>, BTreeSet<String>>,
    /// ports → CIDR sets.
    cidrs: BTreeMap<Vec<u16>, Peers>,
    /// port → DNS names (egress only).
    fqdns: BTreeMap<u16, Peers>,
    dns_names: Peers,
}

impl Rules {
    fn endpoint(&mut self, peer: Value, ports: Vec<u16>) {
        add_peer(self.endpoints.entry(ports).or_default(), peer);
    }

    fn is_empty(&self) -> bool {
        self.endpoints.is_empty() && self.entities.is_empty() && self.cidrs.is_empty() && self.fqdns.is_empty()
    }

    /// The rule list; `dir` is `"from"` or `"to"`.
    fn render(self, dir: &str) -> Vec<Value> {
        let values = |peers: Peers| Value::Array(peers.into_values().collect());
        let rule = |peer_key: String, peers: Value, ports: &[u16]| {
            let mut m = serde_json::Map::new();
            m.insert(peer_key, peers);
            m.insert("toPorts".into(), ports_rule(ports.iter().copied()));
            Value::Object(m)
        };
        let mut out = Vec::new();
        for (ports, peers) in self.endpoints {
            out.push(rule(format!("{dir}Endpoints"), values(peers), &ports));
        }
        for (ports, ents) in self.entities {
            out.push(rule(format!("{dir}Entities"), json!(ents), &ports));
        }
        for (ports, sets) in self.cidrs {
            out.push(rule(format!("{dir}CIDRSet"), values(sets), &ports));
        }
        for (port, names) in self.fqdns {
            out.push(rule("toFQDNs".into(), values(names), &[port]));
        }
        if !self.dns_names.is_empty() {
            out.push(dns_rule(&self.dns_names.into_values().collect::<Vec<_>>()));
        }
        out
    }
}

/// The egress of one client for one flow.
fn egress(ir: &Ir, f: &Flow, rules: &mut Rules) {
    let per_flow = ir.cluster.hbone == HboneMode::PerFlow;
    match &f.dst {
        Dest::Workload { workload, .. } => {
            if per_flow && let Some(hop) = next_hop(ir, f) {
                rules.endpoint(hop, vec![HBONE_PORT]);
            }
            // Through a waypoint, the direct path stays open in Cilium too:
            // binding and unbinding then never cut traffic, and ztunnel's
            // policy (narrowed after the binding) blocks the bypass.
            if per_flow
                && f.via.is_some()
                && let Some(d) = ir.workload(*workload)
            {
                rules.endpoint(workload_pods(d), vec![HBONE_PORT]);
            }
        }
        Dest::Gateway { ports, .. } => {
            // Gateway pods are outside the mesh: the listener ports are real.
            if let Some(hop) = next_hop(ir, f) {
                rules.endpoint(hop, ports.clone());
            }
        }
        Dest::Fqdn { name, port } => {
            let m = dns_match(name);
            add_peer(rules.fqdns.entry(*port).or_default(), m.clone());
            add_peer(&mut rules.dns_names, m);
        }
        Dest::Cidr { set, port } => {
            add_peer(rules.cidrs.entry(vec![*port]).or_default(), cidr_set(set));
        }
    }
}

/// The ingress of the pods a flow arrives at, from the flow's client.
fn ingress(ir: &Ir, f: &Flow, rules: &mut Rules) {
    let per_flow = ir.cluster.hbone == HboneMode::PerFlow;
    let ports: Vec<u16> = match &f.dst {
        Dest::Workload { ports, .. } => ports.iter().map(|p| p.number).collect(),
        Dest::Gateway { ports, .. } => ports.clone(),
        Dest::Fqdn { .. } | Dest::Cidr { .. } => return,
    };
    let into_gateway = matches!(f.dst, Dest::Gateway { .. });
    match &f.src {
        Peer::World => {
            rules.entities.entry(ports).or_default().insert("world".into());
        }
        Peer::Cidr(set) => {
            add_peer(rules.cidrs.entry(ports).or_default(), cidr_set(set));
        }
        src => {
            let Some(peer) = peer_pods(ir, src) else { return };
            if into_gateway {
                rules.endpoint(peer, ports);
            } else if per_flow {
                rules.endpoint(peer, vec![HBONE_PORT]);
            }
        }
    }
}

/// Egress every gateway and waypoint pod needs: istiod (xDS, certificates)
/// and DNS.
fn proxy_needs(ir: &Ir, rules: &mut Rules) {
    let istiod = json!({"matchLabels": {NS_LABEL: ir.mesh.root_namespace, "app": "istiod"}});
    rules.endpoint(istiod, vec![ISTIOD_XDS_PORT]);
    add_peer(&mut rules.dns_names, json!({"matchPattern": "*"}));
}

fn cnp(ir: &Ir, namespace: &str, name: String, origin: &crate::ir::Origin, body: Value) -> Manifest {
    owned(
        ir,
        Meta {
            layer: Layer::WorkloadNetwork,
            step: 0,
            api_version: API,
            kind: "CiliumNetworkPolicy",
            namespace: Some(namespace),
            name,
            origin,
        },
        BTreeMap::new(),
        spec(body),
    )
}

fn policy_body(description: String, selector: Value, ingress: Rules, egress: Rules) -> Option<Value> {
    if ingress.is_empty() && egress.is_empty() {
        return None;
    }
    let mut m = serde_json::Map::new();
    m.insert("description".into(), Value::String(description));
    m.insert("endpointSelector".into(), selector);
    if !ingress.is_empty() {
        m.insert("ingress".into(), Value::Array(ingress.render("from")));
    }
    if !egress.is_empty() {
        m.insert("egress".into(), Value::Array(egress.render("to")));
    }
    m.insert("enableDefaultDeny".into(), no_default_deny());
    Some(Value::Object(m))
}

/// Layer 2: one CNP per workload, gateway and waypoint with traffic, and one
/// per namespace that is a flow's source.
pub fn workload_policies(ir: &Ir) -> Vec<Manifest> {
    let ix = ir.flow_index();
    let mut out = workload_policies_of(ir, &ix, 0..ir.workloads.len());
    out.extend(proxy_policies(ir, &ix));
    out
}

/// The policies of the workloads in `range` (one per workload that any
/// rule selects), so that a large program can build them in parts.
pub fn workload_policies_of(ir: &Ir, ix: &FlowIndex<'_>, range: std::ops::Range<usize>) -> Vec<Manifest> {
    let mut out = Vec::new();
    let used: BTreeSet<usize> = ir.workloads.iter().filter_map(|w| w.waypoint).collect();
    for (wi, w) in ir.workloads.iter().enumerate().skip(range.start).take(range.len()) {
        let (mut inn, mut eg) = (Rules::default(), Rules::default());
        let incoming = FlowIndex::get(&ix.to_workload, wi);
        // Clients through the waypoint are admitted directly too (see
        // `egress`): ztunnel, not Cilium, holds them to the waypoint.
        for f in incoming {
            ingress(ir, f, &mut inn);
        }
        for f in FlowIndex::get(&ix.from_workload, wi) {
            egress(ir, f, &mut eg);
        }
        // The API server is outside the mesh: its real ports, by entity.
        if w.uses_kube_api {
            eg.entities.entry(KUBE_API_PORTS.to_vec()).or_default().insert("kube-apiserver".into());
        }
        // A scraper of waypoints reaches each one's metrics port directly
        // (waypoint pods are outside the mesh, so this is not HBONE).
        if w.scrapes_waypoints {
            for wp in used.iter().filter_map(|i| ir.waypoint(*i)) {
                eg.endpoint(gateway_pods(&wp.namespace, &wp.name), vec![PROXY_METRICS_PORT]);
            }
        }
        // Through a waypoint, the destination's ingress is from the waypoint.
        if let Some(wp) = w.waypoint.and_then(|i| ir.waypoint(i))
            && incoming.iter().any(|f| f.via.is_some())
            && ir.cluster.hbone == HboneMode::PerFlow
        {
            inn.endpoint(gateway_pods(&wp.namespace, &wp.name), vec![HBONE_PORT]);
        }
        let desc = format!("ztp: workload {}/{}", w.namespace, w.name);
        if let Some(body) = policy_body(desc, json!({"matchLabels": w.selector}), inn, eg) {
            out.push(cnp(ir, &w.namespace, format!("ztp-wl-{}", w.name), &w.origin, body));
        }
    }
    out
}

/// The policies of ingress gateways, of waypoints in use and of
/// `namespace(x)` sources: the rest of [`workload_policies`].
pub fn proxy_policies(ir: &Ir, ix: &FlowIndex<'_>) -> Vec<Manifest> {
    let mut out = Vec::new();
    let used: BTreeSet<usize> = ir.workloads.iter().filter_map(|w| w.waypoint).collect();
    for (gi, g) in ir.gateways.iter().enumerate() {
        let (mut inn, mut eg) = (Rules::default(), Rules::default());
        for f in FlowIndex::get(&ix.to_gateway, gi) {
            ingress(ir, f, &mut inn);
        }
        for f in FlowIndex::get(&ix.from_gateway, gi) {
            egress(ir, f, &mut eg);
        }
        proxy_needs(ir, &mut eg);
        let desc = format!("ztp: ingress gateway {}/{}", g.namespace, g.name);
        let selector = json!({"matchLabels": {GATEWAY_NAME_LABEL: g.name}});
        if let Some(body) = policy_body(desc, selector, inn, eg) {
            out.push(cnp(ir, &g.namespace, format!("ztp-gw-{}", g.name), &g.origin, body));
        }
    }
    for (pi, wp) in ir.waypoints.iter().enumerate().filter(|(i, _)| used.contains(i)) {
        let (mut inn, mut eg) = (Rules::default(), Rules::default());
        for scraper in ir.workloads.iter().filter(|w| w.scrapes_waypoints) {
            inn.endpoint(workload_pods(scraper), vec![PROXY_METRICS_PORT]);
        }
        if ir.cluster.hbone == HboneMode::PerFlow {
            for f in FlowIndex::get(&ix.via_waypoint, pi) {
                if let Some(peer) = peer_pods(ir, &f.src) {
                    inn.endpoint(peer, vec![HBONE_PORT]);
                }
                if let Dest::Workload { workload, .. } = &f.dst
                    && let Some(d) = ir.workload(*workload)
                {
                    eg.endpoint(workload_pods(d), vec![HBONE_PORT]);
                }
            }
        }
        proxy_needs(ir, &mut eg);
        let desc = format!("ztp: waypoint {}/{}", wp.namespace, wp.name);
        let selector = json!({"matchLabels": {GATEWAY_NAME_LABEL: wp.name}});
        if let Some(body) = policy_body(desc, selector, inn, eg) {
            out.push(cnp(ir, &wp.namespace, format!("ztp-wp-{}", wp.name), &wp.origin, body));
        }
    }
    out.extend(namespace_sources(ir));
    out
}

/// `namespace(x)` sources cover every pod of `x`, declared or not, so their
/// egress is a policy on the namespace (minus the excepted workloads).
fn namespace_sources(ir: &Ir) -> Vec<Manifest> {
    let mut groups: BTreeMap<(String, Vec<usize>), (Rules, crate::ir::Origin)> = BTreeMap::new();
    for f in &ir.flows {
        if let Peer::Namespace { name, except } = &f.src {
            let (rules, _) =
                groups.entry((name.clone(), except.clone())).or_insert_with(|| (Rules::default(), f.origin.clone()));
            egress(ir, f, rules);
        }
    }
    let mut out = Vec::new();
    for ((ns, except), (eg, origin)) in groups {
        let names: Vec<&str> = except.iter().filter_map(|i| ir.workload(*i)).map(|w| w.name.as_str()).collect();
        let (name, desc) = if names.is_empty() {
            ("ztp-ns-egress".to_string(), format!("ztp: every pod of namespace {ns}"))
        } else {
            (
                format!("ztp-ns-egress-except-{}", names.join("--")),
                format!("ztp: every pod of namespace {ns} but {}", names.join(", ")),
            )
        };
        let exprs = except_expressions(ir, &except);
        let selector = if exprs.is_empty() { json!({}) } else { json!({"matchExpressions": exprs}) };
        if let Some(body) = policy_body(desc, selector, Rules::default(), eg) {
            out.push(cnp(ir, &ns, name, &origin, body));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{find, ir_of};

    const TWO: &str = r#"
namespace a {
  workload web { port http { number = 80, protocol = http } }
  workload api { port http { number = 8080, protocol = http } }
  workload idle {}
  allow web -> api:http
}
"#;

    #[test]
    fn baseline_only_when_asked() {
        assert!(baseline(&ir_of(TWO)).is_empty());
        let ir = ir_of(&format!("import \"std/baseline\"\n{TWO}"));
        let names: Vec<String> = baseline(&ir).iter().map(|m| m.name.clone()).collect();
        assert_eq!(names, ["ztp-t-allow-dns", "ztp-t-allow-ambient-probes", "ztp-t-deny-egress"]);
        let probes = find(&baseline(&ir), "CiliumClusterwideNetworkPolicy", "ztp-t-allow-ambient-probes");
        assert_eq!(probes["spec"]["ingress"], json!([{"fromCIDR": ["169.254.7.127/32"]}]));
        assert_eq!(default_deny(&ir).len(), 1);
        assert!(default_deny(&ir_of(TWO)).is_empty());
        let ms = baseline(&ir);
        let dns = find(&ms, "CiliumClusterwideNetworkPolicy", "ztp-t-allow-dns");
        assert_eq!(dns["spec"]["egress"][0]["toPorts"][0]["rules"], json!({"dns": [{"matchPattern": "*"}]}));
        assert_eq!(dns["spec"]["enableDefaultDeny"], json!({"ingress": false, "egress": false}));
        // Exists beside NotIn, so world and host never match the NotIn.
        let exprs = &dns["spec"]["endpointSelector"]["matchExpressions"];
        assert_eq!(exprs[0], json!({"key": NS_LABEL, "operator": "Exists"}));
        assert_eq!(exprs[1]["operator"], "NotIn");
        assert!(exprs[1]["values"].as_array().unwrap().contains(&json!("kube-system")));
        let deny = find(&ms, "CiliumClusterwideNetworkPolicy", "ztp-t-deny-egress");
        assert_eq!(deny["spec"]["egressDeny"], json!([{"toCIDRSet": [{"cidr": "169.254.169.254/32"}]}]));
        assert_eq!(deny["spec"]["enableDefaultDeny"], json!({"ingress": false, "egress": false}));
    }

    #[test]
    fn through_a_waypoint_is_client_to_waypoint_to_destination() {
        let ir = ir_of(
            r#"namespace a {
  workload web {}
  workload api { port http { number = 80, protocol = http } }
  allow web -> api:http { http { methods = [GET] } }
}"#,
        );
        let ms = workload_policies(&ir);
        let wp = find(&ms, "CiliumNetworkPolicy", "ztp-wp-waypoint");
        let hbone = json!([{"ports": [{"port": "15008", "protocol": "TCP"}]}]);
        assert_eq!(
            wp["spec"]["ingress"],
            json!([{"fromEndpoints": [{"matchLabels": {"app": "web", NS_LABEL: "a"}}], "toPorts": hbone}])
        );
        assert_eq!(
            wp["spec"]["egress"][0],
            json!({"toEndpoints": [{"matchLabels": {"app": "api", NS_LABEL: "a"}}], "toPorts": hbone})
        );
        // The client may use either path; ztunnel at api admits only the waypoint.
        let web = find(&ms, "CiliumNetworkPolicy", "ztp-wl-web");
        let to = web["spec"]["egress"][0]["toEndpoints"].to_string();
        assert!(to.contains("\"app\":\"api\"") && to.contains(GATEWAY_NAME_LABEL));
    }

    #[test]
    fn a_flow_is_hbone_on_both_ends() {
        let ms = workload_policies(&ir_of(TWO));
        let web = find(&ms, "CiliumNetworkPolicy", "ztp-wl-web");
        assert_eq!(
            web["spec"]["egress"],
            json!([{
                "toEndpoints": [{"matchLabels": {"app": "api", NS_LABEL: "a"}}],
                "toPorts": [{"ports": [{"port": "15008", "protocol": "TCP"}]}],
            }])
        );
        assert!(web["spec"].get("ingress").is_none());
        let api = find(&ms, "CiliumNetworkPolicy", "ztp-wl-api");
        assert_eq!(api["spec"]["ingress"][0]["fromEndpoints"], json!([{"matchLabels": {"app": "web", NS_LABEL: "a"}}]));
        // No flows, no policy (default deny covers it).
        assert!(find(&ms, "CiliumNetworkPolicy", "ztp-wl-idle").is_null());
    }

    #[test]
    fn mesh_wide_hbone_replaces_per_flow_rules() {
        let ir = ir_of(&format!("cluster {{ hbone = mesh_wide }}\n{TWO}"));
        assert!(baseline(&ir).iter().any(|m| m.name == "ztp-t-allow-hbone"));
        assert!(workload_policies(&ir).is_empty());
    }

    #[test]
    fn fqdn_egress_carries_its_dns_rule() {
        let ir = ir_of(
            r#"cluster { cilium_version = "1.19" }
namespace a {
  workload w {}
  allow w -> "api.github.com":443
  allow w -> "*.s3.amazonaws.com":443
}"#,
        );
        let w = find(&workload_policies(&ir), "CiliumNetworkPolicy", "ztp-wl-w");
        let egress = w["spec"]["egress"].as_array().unwrap();
        let names = json!([{"matchName": "api.github.com"}, {"matchPattern": "*.s3.amazonaws.com"}]);
        assert_eq!(egress[0]["toFQDNs"], names);
        assert_eq!(egress[1]["toPorts"][0]["rules"]["dns"], names);
        assert_eq!(egress[1]["toPorts"][0]["ports"][0], json!({"port": "53", "protocol": "UDP"}));
    }

    #[test]
    fn cidr_egress_keeps_its_exceptions() {
        let ir = ir_of("namespace a {\n workload w {}\n allow w -> 10.0.0.0/8:5432 except [10.1.0.0/16]\n}");
        let w = find(&workload_policies(&ir), "CiliumNetworkPolicy", "ztp-wl-w");
        assert_eq!(w["spec"]["egress"][0]["toCIDRSet"], json!([{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}]));
        assert_eq!(w["spec"]["egress"][0]["toPorts"][0]["ports"], json!([{"port": "5432", "protocol": "TCP"}]));
    }

    #[test]
    fn namespace_sources_get_a_namespace_policy() {
        let ir = ir_of(
            r#"namespace a { workload x {} workload y {} }
namespace b {
  workload api { port http { number = 80, protocol = http } }
  allow namespace(a) except x -> api:http
}"#,
        );
        let ms = workload_policies(&ir);
        let ns = find(&ms, "CiliumNetworkPolicy", "ztp-ns-egress-except-x");
        assert_eq!(ns["metadata"]["namespace"], "a");
        assert_eq!(
            ns["spec"]["endpointSelector"],
            json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]})
        );
        let api = find(&ms, "CiliumNetworkPolicy", "ztp-wl-api");
        assert_eq!(
            api["spec"]["ingress"][0]["fromEndpoints"],
            json!([{"matchLabels": {NS_LABEL: "a"}, "matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]}])
        );
    }

    #[test]
    fn waypoint_scrapers_reach_every_waypoints_metrics() {
        let ir = ir_of(
            r#"namespace m { workload prom { scrapes_waypoints = true, uses_pod_ips = true } }
namespace a {
  workload web {}
  workload api { port http { number = 80, protocol = http } }
  allow web -> api:http { http { methods = [GET] } }
}"#,
        );
        let ms = workload_policies(&ir);
        let wp = find(&ms, "CiliumNetworkPolicy", "ztp-wp-waypoint");
        assert!(wp["spec"]["ingress"].to_string().contains(r#""app":"prom""#));
        let prom = find(&ms, "CiliumNetworkPolicy", "ztp-wl-prom");
        assert_eq!(
            prom["spec"]["egress"],
            json!([{
                "toEndpoints": [{"matchLabels": {GATEWAY_NAME_LABEL: "waypoint", NS_LABEL: "a"}}],
                "toPorts": [{"ports": [{"port": "15020", "protocol": "TCP"}]}],
            }])
        );
    }

    #[test]
    fn gateways_take_world_on_listener_ports_and_reach_istiod() {
        let ir = ir_of(
            r#"namespace a {
  gateway gw { listener http { port = 80 } route "/" -> api:http }
  workload api { port http { number = 8080, protocol = http } }
  allow world -> gw:http
  allow gw -> api:http
}"#,
        );
        let gw = find(&workload_policies(&ir), "CiliumNetworkPolicy", "ztp-gw-gw");
        assert_eq!(gw["spec"]["endpointSelector"], json!({"matchLabels": {GATEWAY_NAME_LABEL: "gw"}}));
        assert_eq!(
            gw["spec"]["ingress"],
            json!([{"fromEntities": ["world"], "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}])
        );
        let egress = gw["spec"]["egress"].to_string();
        assert!(egress.contains("istiod") && egress.contains("15012") && egress.contains("kube-dns"));
    }
}
