//! The checked program: what `ztp check` proves and what `ir::lower` reads.
//!
//! Built by `resolve` from the ASTs of every file of a program: blocks and
//! attributes are typed, defaults are filled in, names are resolved to ids
//! ([`WorkloadId`], [`GatewayId`], port indices), values are parsed (ports,
//! CIDRs, DNS names). Every item keeps the span it came from; values filled in
//! by default have `span: None`. `typeck::check` then applies the rules that
//! need the whole program. Nothing here knows about Kubernetes objects.

use crate::source::Span;
use crate::value::{Cidr, DnsName, HttpMethod};

/// A value and where it was written (`None` for defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Option<Span>,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span: Some(span) }
    }

    pub fn default_value(value: T) -> Self {
        Spanned { value, span: None }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Program {
    pub mesh: Mesh,
    pub cluster: Cluster,
    pub namespaces: Vec<Namespace>,
    pub flows: Vec<Flow>,
    pub expects: Vec<Expect>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MtlsMode {
    Strict,
    Permissive,
}

#[derive(Clone, Debug)]
pub struct Mesh {
    pub trust_domain: Spanned<String>,
    pub mtls: Spanned<MtlsMode>,
    /// Istio's root namespace (mesh-wide policies live here).
    pub root_namespace: Spanned<String>,
}

impl Default for Mesh {
    fn default() -> Self {
        Mesh {
            trust_domain: Spanned::default_value("cluster.local".into()),
            mtls: Spanned::default_value(MtlsMode::Strict),
            root_namespace: Spanned::default_value("istio-system".into()),
        }
    }
}

/// How HBONE (port 15008) is allowed in Cilium.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HboneMode {
    /// One allow per flow, on the source's egress and the destination's ingress.
    PerFlow,
    /// One mesh-wide allow, as in the hand-built lab.
    MeshWide,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    /// The name of this program's set of objects (label
    /// `app.kubernetes.io/part-of`, cluster-wide object names).
    pub stack: Option<Spanned<String>>,
    /// Cilium `major.minor`, which decides pattern semantics and features.
    pub cilium_version: Spanned<(u32, u32)>,
    pub hbone: Spanned<HboneMode>,
    /// Namespaces never enrolled, never default-denied.
    pub system_namespaces: Vec<Spanned<String>>,
    /// Cluster baseline switches (set by `std/baseline`).
    pub allow_dns: Spanned<bool>,
    pub allow_ambient_probes: Spanned<bool>,
    pub default_deny: Spanned<bool>,
    pub deny_egress: Vec<Spanned<Cidr>>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            stack: None,
            cilium_version: Spanned::default_value((1, 18)),
            hbone: Spanned::default_value(HboneMode::PerFlow),
            system_namespaces: Vec::new(),
            allow_dns: Spanned::default_value(false),
            allow_ambient_probes: Spanned::default_value(false),
            default_deny: Spanned::default_value(false),
            deny_egress: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Namespace {
    pub name: Spanned<String>,
    pub workloads: Vec<Workload>,
    pub gateways: Vec<Gateway>,
    pub waypoints: Vec<Waypoint>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamespaceId(pub usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadId {
    pub ns: NamespaceId,
    pub index: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatewayId {
    pub ns: NamespaceId,
    pub index: usize,
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub name: Spanned<String>,
    /// Defaults to the workload's name.
    pub service_account: Spanned<String>,
    /// Defaults to `app = <name>`. Sorted by key.
    pub selector: Vec<(Spanned<String>, Spanned<String>)>,
    /// The `selector` block, when one is written.
    pub selector_span: Option<Span>,
    pub ports: Vec<Port>,
    /// The Service in front of the workload (its ports are the workload's
    /// ports). Defaults to the workload's name.
    pub service: Spanned<String>,
    /// Clients that connect to pod IPs (scrapers, StatefulSet peers) never
    /// pass a service waypoint on that path; their L4 flows toward a
    /// waypoint-fronted workload take the Service's path through it too.
    pub uses_pod_ips: Spanned<bool>,
    /// The workload talks to the Kubernetes API server (service discovery,
    /// controllers).
    pub uses_kube_api: Spanned<bool>,
    /// The workload scrapes the metrics of every waypoint (port 15020).
    pub scrapes_waypoints: Spanned<bool>,
    /// The waypoint (declared in the same namespace) that enforces L7 rules
    /// for this workload, when chosen explicitly.
    pub waypoint: Option<Spanned<String>>,
    /// Ports declared with an error already reported (a number out of range
    /// or missing, an unknown protocol). Their names stay declared, so that
    /// flows and routes naming them report nothing more: one mistake, one
    /// error. A program with such a port is never lowered.
    pub invalid_ports: Vec<Spanned<String>>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Http,
    Grpc,
    Tls,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Tls => "tls",
        }
    }

    /// Whether a waypoint can apply HTTP rules to this port.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Grpc)
    }
}

#[derive(Clone, Debug)]
pub struct Port {
    pub name: Spanned<String>,
    pub number: Spanned<u16>,
    pub protocol: Spanned<Protocol>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenerProtocol {
    Http,
    Https,
}

#[derive(Clone, Debug)]
pub struct Listener {
    pub name: Spanned<String>,
    pub port: Spanned<u16>,
    pub protocol: Spanned<ListenerProtocol>,
    pub hostname: Option<Spanned<DnsName>>,
    /// Secret holding the certificate (HTTPS listeners).
    pub certificate: Option<Spanned<String>>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Gateway {
    pub name: Spanned<String>,
    pub listeners: Vec<Listener>,
    /// Listeners declared with an error already reported, by name (see
    /// [`Workload::invalid_ports`]).
    pub invalid_listeners: Vec<Spanned<String>>,
    pub routes: Vec<Route>,
    pub span: Span,
}

/// `route "/prefix" -> workload:port`: an HTTPRoute rule.
#[derive(Clone, Debug)]
pub struct Route {
    pub path: Spanned<String>,
    pub backend: WorkloadId,
    /// Index into the backend's ports.
    pub port: usize,
    /// Listener names this route attaches to; empty means every listener.
    pub listeners: Vec<Spanned<usize>>,
    pub hostnames: Vec<Spanned<DnsName>>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WaypointFor {
    Service,
    Workload,
    All,
}

#[derive(Clone, Debug)]
pub struct Waypoint {
    pub name: Spanned<String>,
    pub for_: Spanned<WaypointFor>,
    pub span: Span,
}

/// A set of CIDRs: one block minus exceptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrSet {
    pub cidr: Spanned<Cidr>,
    pub except: Vec<Spanned<Cidr>>,
}

/// Who starts a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Workload(WorkloadId),
    Gateway(GatewayId),
    /// Every workload of a namespace, minus the listed ones.
    Namespace {
        ns: NamespaceId,
        except: Vec<WorkloadId>,
    },
    World,
    Cidr(CidrSet),
}

/// Where a flow goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Workload ports (indices); all declared ports when none was named.
    Workload {
        id: WorkloadId,
        ports: Vec<usize>,
    },
    /// Gateway listeners (indices); all listeners when none was named.
    Gateway {
        id: GatewayId,
        listeners: Vec<usize>,
    },
    Fqdn {
        name: Spanned<DnsName>,
        port: Option<Spanned<u16>>,
    },
    Cidr {
        set: CidrSet,
        port: Option<Spanned<u16>>,
    },
}

/// L7 conditions of a flow (enforced by a waypoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpMatch {
    pub methods: Vec<Spanned<HttpMethod>>,
    pub paths: Vec<Spanned<String>>,
    /// Header name (lower-case) and exact value.
    pub headers: Vec<(Spanned<String>, Spanned<String>)>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Flow {
    pub src: Spanned<Source>,
    pub dst: Spanned<Dest>,
    pub http: Option<HttpMatch>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    Allow,
    Deny,
}

/// `expect allow|deny SRC -> DST`: a reachability fact, for the verifier to
/// check against the emitted policy.
#[derive(Clone, Debug)]
pub struct Expect {
    pub verdict: Verdict,
    pub src: Spanned<Source>,
    pub dst: Spanned<Dest>,
    /// The requests the expectation is about: each method with each path
    /// (`None`: any request).
    pub http: Option<HttpMatch>,
    pub span: Span,
}

impl Program {
    pub fn namespace(&self, id: NamespaceId) -> Option<&Namespace> {
        self.namespaces.get(id.0)
    }

    pub fn workload(&self, id: WorkloadId) -> Option<&Workload> {
        self.namespaces.get(id.ns.0)?.workloads.get(id.index)
    }

    pub fn gateway(&self, id: GatewayId) -> Option<&Gateway> {
        self.namespaces.get(id.ns.0)?.gateways.get(id.index)
    }

    /// `ns/name` of a workload, for messages.
    pub fn workload_path(&self, id: WorkloadId) -> String {
        match (self.namespace(id.ns), self.workload(id)) {
            (Some(n), Some(w)) => format!("{}/{}", n.name.value, w.name.value),
            _ => "?".into(),
        }
    }

    pub fn gateway_path(&self, id: GatewayId) -> String {
        match (self.namespace(id.ns), self.gateway(id)) {
            (Some(n), Some(g)) => format!("{}/{}", n.name.value, g.name.value),
            _ => "?".into(),
        }
    }
}
