//! The endpoints a set of manifests declares, for questions asked without
//! a program: each workload (Deployment, StatefulSet, DaemonSet,
//! ReplicaSet, Job, CronJob or Pod) as a pod of its template, with its
//! labels, its service account's identity and its container ports; each
//! ingress Gateway as its proxy pod (`<name>-istio`, or the
//! `gateway.istio.io/service-account` annotation); and the ports clients
//! use, read through the Services that select the pods: a Service port
//! is reached on its target port, which is what Cilium and ztunnel see.
//! It also reads the question's words — a source, a destination with an
//! optional port — against those endpoints. It never judges a flow.

use super::{Endpoint, GATEWAY_NAME_LABEL, at, list, string_map};
use crate::source::Span;
use crate::value::{Cidr, parse_cidr};
use serde_json::Value;
use std::collections::BTreeMap;

/// A port a client can ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// The Service port's name, else the container port's.
    pub name: String,
    /// The target port: what the pod listens on.
    pub number: u16,
    /// The Service a client reaches it through, with that Service's port.
    pub service: Option<(String, u16)>,
}

/// A workload or ingress gateway of the manifests.
#[derive(Clone, Debug)]
pub struct Named {
    /// `Deployment`, `Gateway`, …
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub endpoint: Endpoint,
    pub ports: Vec<PortInfo>,
}

impl Named {
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One concrete question: a destination endpoint and port, with the
/// Service the client addresses (`None`: the pod IP) and a display name.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub endpoint: Endpoint,
    pub service: Option<String>,
    pub port: u16,
}

/// The endpoints of a manifest set, sorted by namespace and name.
#[derive(Debug, Default)]
pub struct Inventory {
    pub trust_domain: String,
    pub endpoints: Vec<Named>,
}

const WORKLOAD_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"];

/// The pod template of a workload object.
fn template(o: &Value) -> Option<&Value> {
    match at(o, &["kind"]).as_str()? {
        "Pod" => Some(o),
        "CronJob" => Some(at(o, &["spec", "jobTemplate", "spec", "template"])),
        _ => Some(at(o, &["spec", "template"])),
    }
}

fn port_of(v: &Value) -> Option<u16> {
    v.as_u64().and_then(|n| u16::try_from(n).ok()).or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

impl Inventory {
    pub fn new(objects: &[Value], trust_domain: &str) -> Inventory {
        let mut services: Vec<&Value> =
            objects.iter().filter(|o| at(o, &["kind"]).as_str() == Some("Service")).collect();
        services.sort_by_key(|s| super::name_of(s));
        let mut endpoints = Vec::new();
        for o in objects {
            let kind = at(o, &["kind"]).as_str().unwrap_or("");
            let ns = at(o, &["metadata", "namespace"]).as_str().unwrap_or("default").to_string();
            let name = at(o, &["metadata", "name"]).as_str().unwrap_or("").to_string();
            if WORKLOAD_KINDS.contains(&kind) {
                let Some(t) = template(o) else { continue };
                let labels = string_map(at(t, &["metadata", "labels"]));
                let sa = at(t, &["spec", "serviceAccountName"])
                    .as_str()
                    .or_else(|| at(t, &["spec", "serviceAccount"]).as_str())
                    .unwrap_or("default");
                let mut named_ports = BTreeMap::new();
                let mut container_ports = Vec::new();
                for c in list(at(t, &["spec", "containers"])) {
                    for p in list(at(c, &["ports"])) {
                        let Some(n) = port_of(at(p, &["containerPort"])) else { continue };
                        let pname = at(p, &["name"]).as_str().unwrap_or("").to_string();
                        if !pname.is_empty() {
                            named_ports.insert(pname.clone(), n);
                        }
                        container_ports.push((pname, n));
                    }
                }
                let mut ports: Vec<PortInfo> = Vec::new();
                for s in services.iter().filter(|s| at(s, &["metadata", "namespace"]).as_str() == Some(&ns)) {
                    let sel = string_map(at(s, &["spec", "selector"]));
                    if sel.is_empty() || !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                        continue;
                    }
                    let sname = at(s, &["metadata", "name"]).as_str().unwrap_or("").to_string();
                    for sp in list(at(s, &["spec", "ports"])) {
                        let Some(number) = port_of(at(sp, &["port"])) else { continue };
                        let target = at(sp, &["targetPort"]);
                        let target = match target.as_str().filter(|t| t.parse::<u16>().is_err()) {
                            Some(named) => named_ports.get(named).copied(),
                            None if target.is_null() => Some(number),
                            None => port_of(target),
                        };
                        let Some(target) = target else { continue };
                        if ports.iter().any(|p| p.number == target) {
                            continue;
                        }
                        let pname = at(sp, &["name"]).as_str().map_or_else(|| number.to_string(), str::to_string);
                        ports.push(PortInfo { name: pname, number: target, service: Some((sname.clone(), number)) });
                    }
                }
                for (pname, n) in container_ports {
                    if !ports.iter().any(|p| p.number == n) {
                        let pname = if pname.is_empty() { n.to_string() } else { pname };
                        ports.push(PortInfo { name: pname, number: n, service: None });
                    }
                }
                let principal = format!("{trust_domain}/ns/{ns}/sa/{sa}");
                let shown = (sa != name).then(|| name.clone());
                let endpoint = Endpoint { named_ports, name: shown, ..Endpoint::pod(&ns, labels, Some(principal)) };
                endpoints.push(Named { kind: kind.to_string(), namespace: ns, name, endpoint, ports });
            } else if kind == "Gateway" && at(o, &["spec", "gatewayClassName"]).as_str() != Some("istio-waypoint") {
                let sa = at(o, &["metadata", "annotations", "gateway.istio.io/service-account"])
                    .as_str()
                    .map_or_else(|| format!("{name}-istio"), str::to_string);
                let labels = BTreeMap::from([(GATEWAY_NAME_LABEL.to_string(), name.clone())]);
                let principal = format!("{trust_domain}/ns/{ns}/sa/{sa}");
                let endpoint = Endpoint { proxy: true, ..Endpoint::pod(&ns, labels, Some(principal)) };
                let mut ports = Vec::new();
                for l in list(at(o, &["spec", "listeners"])) {
                    let Some(n) = port_of(at(l, &["port"])) else { continue };
                    if !ports.iter().any(|p: &PortInfo| p.number == n) {
                        let lname = at(l, &["name"]).as_str().map_or_else(|| n.to_string(), str::to_string);
                        ports.push(PortInfo { name: lname, number: n, service: None });
                    }
                }
                endpoints.push(Named { kind: kind.to_string(), namespace: ns, name, endpoint, ports });
            }
        }
        endpoints.sort_by(|a, b| (&a.namespace, &a.name, &a.kind).cmp(&(&b.namespace, &b.name, &b.kind)));
        Inventory { trust_domain: trust_domain.to_string(), endpoints }
    }

    /// The workload or gateway `text` names: `ns/name`, or a name unique
    /// in the manifests.
    pub fn find(&self, text: &str) -> Result<&Named, String> {
        let (ns, name) = match text.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, text),
        };
        let found: Vec<&Named> =
            self.endpoints.iter().filter(|e| e.name == name && ns.is_none_or(|n| e.namespace == n)).collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => {
                let names = self.endpoints.iter().map(|e| e.name.as_str());
                let hint = crate::diag::did_you_mean(name, names).map(|n| format!(" (did you mean `{n}`?)"));
                Err(format!("the manifests have no workload or gateway `{text}`{}", hint.unwrap_or_default()))
            }
            _ => Err(format!("`{text}` names several workloads or gateways: write it as `namespace/name`")),
        }
    }

    /// Reads a source: `world`, `probe` (a kubelet probe), `namespace(x)`
    /// (a pod of `x` with no labels, running as `default`), an address or
    /// CIDR, or a workload or gateway. Returns its display name too.
    pub fn source(&self, text: &str) -> Result<(String, Endpoint), String> {
        let text = text.trim();
        match text {
            "world" => return Ok(("world".into(), Endpoint::world())),
            "probe" => return Ok(("probe".into(), Endpoint::probe())),
            _ => {}
        }
        if let Some(ns) = text.strip_prefix("namespace(").and_then(|r| r.strip_suffix(')')) {
            let principal = format!("{}/ns/{ns}/sa/default", self.trust_domain);
            return Ok((text.to_string(), Endpoint::pod(ns, BTreeMap::new(), Some(principal))));
        }
        if let Some(a) = address(text) {
            return Ok((text.to_string(), Endpoint::external_address(a?)));
        }
        let n = self.find(text)?;
        Ok((n.id(), n.endpoint.clone()))
    }

    /// Reads a destination: a workload or gateway with an optional port
    /// (a Service port or a container port, by name or number; without
    /// one, every port), a DNS name with a port, or an address with a
    /// port. `pod_ip` asks for the pod IP instead of the Service.
    pub fn destination(&self, text: &str, pod_ip: bool) -> Result<Vec<Target>, String> {
        let text = text.trim();
        let (target, port) = match text.rsplit_once(':') {
            Some((t, p)) if !p.contains('/') && !p.contains(']') => (t, Some(p)),
            _ => (text, None),
        };
        let number = |p: Option<&str>| -> Result<u16, String> {
            let p = p.ok_or_else(|| format!("`{text}` needs a port"))?;
            p.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| format!("`{p}` is not a port number"))
        };
        if let Some(a) = address(target) {
            let a = a?;
            let port = number(port)?;
            return Ok(vec![Target {
                name: format!("{}:{port}", a.addr),
                endpoint: Endpoint::external_address(a),
                service: None,
                port,
            }]);
        }
        if target == "world" {
            let port = number(port)?;
            return Ok(vec![Target {
                name: format!("world:{port}"),
                endpoint: Endpoint::world(),
                service: None,
                port,
            }]);
        }
        let quoted = target.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
        let dns = quoted.unwrap_or(target);
        if quoted.is_some() || (dns.contains('.') && !dns.contains('/')) {
            let port = number(port)?;
            let name = crate::value::parse_dns_name(dns, Span::default()).map_err(|d| d.message)?;
            return Ok(vec![Target {
                name: format!("{}:{port}", name.as_str()),
                endpoint: Endpoint::external_name(name.as_str()),
                service: None,
                port,
            }]);
        }
        let n = self.find(target)?;
        let ports: Vec<&PortInfo> = match port {
            None => n.ports.iter().collect(),
            Some(p) => {
                let hit = n.ports.iter().find(|x| {
                    x.name == p
                        || x.number.to_string() == p
                        || x.service.as_ref().is_some_and(|(_, s)| s.to_string() == p)
                });
                match (hit, p.parse::<u16>()) {
                    (Some(h), _) => vec![h],
                    // A port the manifests do not declare is still a fair question.
                    (None, Ok(number)) if number > 0 => {
                        return Ok(vec![self.target(n, &PortInfo { name: p.into(), number, service: None }, pod_ip)]);
                    }
                    _ => return Err(format!("{} {} has no port `{p}`", n.kind, n.id())),
                }
            }
        };
        if ports.is_empty() {
            return Err(format!("{} {} declares no port: name one (`{}:PORT`)", n.kind, n.id(), n.id()));
        }
        Ok(ports.into_iter().map(|p| self.target(n, p, pod_ip)).collect())
    }

    fn target(&self, n: &Named, p: &PortInfo, pod_ip: bool) -> Target {
        // A client that names a port no Service exposes uses the first
        // Service that selects the pod, if it has one, else the pod IP.
        let service = if pod_ip { None } else { p.service.as_ref().map(|(s, _)| s.clone()) };
        Target { name: format!("{}:{}", n.id(), p.number), endpoint: n.endpoint.clone(), service, port: p.number }
    }
}

/// An IP address or CIDR, if `text` looks like one.
fn address(text: &str) -> Option<Result<Cidr, String>> {
    let looks = text.chars().next().is_some_and(|c| c.is_ascii_digit()) && !text.contains('-')
        || text.contains("::")
        || text.starts_with('[');
    if !looks || text.chars().any(|c| c.is_ascii_alphabetic() && !c.is_ascii_hexdigit()) {
        return None;
    }
    let t = text.trim_start_matches('[').trim_end_matches(']');
    let with_prefix = if t.contains('/') {
        t.to_string()
    } else if t.contains(':') {
        format!("{t}/128")
    } else {
        format!("{t}/32")
    };
    Some(parse_cidr(&with_prefix, Span::default()).map_err(|d| d.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_ports_are_reached_on_their_target_ports() {
        let deploy = json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "a"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"serviceAccountName": "web", "containers": [{"ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9090}]}]}}}});
        let svc = json!({"kind": "Service", "metadata": {"name": "web", "namespace": "a"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "front", "port": 80, "targetPort": "http"}]}});
        let inv = Inventory::new(&[deploy, svc], "cluster.local");
        let t = inv.destination("web:80", false).unwrap();
        assert_eq!((t[0].port, t[0].service.as_deref()), (8080, Some("web")));
        let all = inv.destination("a/web", false).unwrap();
        assert_eq!(all.iter().map(|t| t.port).collect::<Vec<_>>(), vec![8080, 9090]);
        assert_eq!(all[1].service, None);
        let (_, src) = inv.source("web").unwrap();
        assert_eq!(src.principal.as_deref(), Some("cluster.local/ns/a/sa/web"));
        assert!(inv.source("wbe").unwrap_err().contains("did you mean `web`"));
        assert!(inv.source("10.0.0.1").unwrap().1.address.is_some());
        assert_eq!(inv.destination("api.github.com:443", false).unwrap()[0].port, 443);
    }
}
