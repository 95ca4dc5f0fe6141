//! The normalized intent: the single source of truth for every backend.
//!
//! `lower` turns the checked HIR into an [`Ir`]: defaults applied, names
//! resolved to indices into sorted tables, identities spelled out
//! (`<trust_domain>/ns/<ns>/sa/<sa>`), waypoints derived (one per namespace
//! that has L7 rules, unless declared) and every flow's path decided (direct,
//! or through its destination's waypoint). It also runs the checks that need
//! this view of the program (DOMAIN.md's gotchas as compile errors). Every
//! item keeps its [`Origin`], the `.ztp` line it came from, so that emitted
//! objects can point back to intent. Tables are sorted, so backends that walk
//! them in order produce the same bytes for the same program.

mod lower;

pub use lower::lower;

pub use crate::hir::Verdict;
use crate::hir::{HboneMode, ListenerProtocol, MtlsMode, Protocol, WaypointFor};
use crate::source::Span;
use crate::value::{Cidr, DnsName, HttpMethod};
use std::collections::BTreeMap;

/// Where an item was declared: `file:line` relative to the program's root,
/// or a description of the default that produced it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin(pub String);

#[derive(Clone, Debug)]
pub struct Ir {
    /// Name of the program's object set (`app.kubernetes.io/part-of`).
    pub stack: String,
    pub mesh: Mesh,
    pub cluster: Cluster,
    pub namespaces: Vec<Namespace>,
    pub workloads: Vec<Workload>,
    pub gateways: Vec<Gateway>,
    pub waypoints: Vec<Waypoint>,
    pub flows: Vec<Flow>,
    pub expects: Vec<Expect>,
}

#[derive(Clone, Debug)]
pub struct Mesh {
    pub trust_domain: String,
    pub mtls: MtlsMode,
    pub mtls_origin: Origin,
    /// Istio's root namespace, where istiod and mesh-wide policy live.
    pub root_namespace: String,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub cilium: (u32, u32),
    pub hbone: HboneMode,
    pub hbone_origin: Origin,
    /// Sorted, deduplicated.
    pub system_namespaces: Vec<String>,
    pub allow_dns: Option<Origin>,
    pub allow_ambient_probes: Option<Origin>,
    pub default_deny: Option<Origin>,
    pub deny_egress: Vec<(Cidr, Origin)>,
}

#[derive(Clone, Debug)]
pub struct Namespace {
    pub name: String,
    pub origin: Origin,
    /// The declaration's span, for diagnostics about this item.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    pub name: String,
    pub number: u16,
    pub protocol: Protocol,
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    pub service: String,
    pub service_account: String,
    /// `<trust_domain>/ns/<ns>/sa/<sa>`.
    pub principal: String,
    pub selector: BTreeMap<String, String>,
    /// Sorted by number.
    pub ports: Vec<Port>,
    pub uses_pod_ips: bool,
    /// Talks to the Kubernetes API server.
    pub uses_kube_api: bool,
    /// Scrapes every waypoint's metrics (port 15020).
    pub scrapes_waypoints: bool,
    /// The waypoint that fronts this workload's Service, if any.
    pub waypoint: Option<usize>,
    /// Whether ingress gateway traffic to the Service goes through the
    /// waypoint too (`istio.io/ingress-use-waypoint`).
    pub ingress_use_waypoint: bool,
    pub origin: Origin,
    /// The declaration's span, for diagnostics about this item.
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Listener {
    pub name: String,
    pub port: u16,
    pub protocol: ListenerProtocol,
    pub hostname: Option<String>,
    pub certificate: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Route {
    /// Path prefix.
    pub path: String,
    /// Index into [`Ir::workloads`].
    pub backend: usize,
    pub port: u16,
    /// Listener names; empty means all.
    pub listeners: Vec<String>,
    pub hostnames: Vec<String>,
    pub origin: Origin,
    /// The declaration's span, for diagnostics about this item.
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Gateway {
    pub namespace: String,
    pub name: String,
    /// `<gateway>-istio`, the service account Istio gives its pods.
    pub service_account: String,
    pub principal: String,
    pub listeners: Vec<Listener>,
    pub routes: Vec<Route>,
    pub origin: Origin,
    /// The declaration's span, for diagnostics about this item.
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Waypoint {
    pub namespace: String,
    pub name: String,
    pub for_: WaypointFor,
    /// The waypoint's pods run as a service account named after it.
    pub principal: String,
    /// Derived by ztp (not declared).
    pub derived: bool,
    pub origin: Origin,
    /// The declaration's span, for diagnostics about this item.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CidrSet {
    pub cidr: Cidr,
    /// Sorted, deduplicated.
    pub except: Vec<Cidr>,
}

/// Who starts a flow.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    Workload(usize),
    Gateway(usize),
    /// Every pod of a namespace but the excepted workloads.
    Namespace {
        name: String,
        except: Vec<usize>,
    },
    World,
    Cidr(CidrSet),
}

/// Where a flow goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dest {
    /// Ports of a workload (sorted).
    Workload {
        workload: usize,
        ports: Vec<Port>,
    },
    /// Listener ports of a gateway (sorted).
    Gateway {
        gateway: usize,
        ports: Vec<u16>,
    },
    Fqdn {
        name: DnsName,
        port: u16,
    },
    Cidr {
        set: CidrSet,
        port: u16,
    },
}

/// L7 conditions, enforced by a waypoint. Lists are sorted; empty means any.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Http {
    pub methods: Vec<HttpMethod>,
    pub paths: Vec<String>,
    /// Header name (lower-case) → exact value.
    pub headers: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    pub src: Peer,
    pub dst: Dest,
    pub http: Option<Http>,
    /// The waypoint the flow passes (index into [`Ir::waypoints`]).
    pub via: Option<usize>,
    pub origin: Origin,
    /// The declaration's span, for diagnostics about this item.
    pub span: Span,
}

/// An `expect` assertion, for the verifier.
#[derive(Clone, Debug)]
pub struct Expect {
    pub verdict: Verdict,
    pub src: Peer,
    pub dst: Dest,
    /// The requests asked about, each method with each path (`None`: any
    /// request; see `verify::expect`).
    pub http: Option<Http>,
    pub origin: Origin,
    /// The declaration's span, for diagnostics about this item.
    pub span: Span,
}

/// Flows by the workload, gateway or waypoint they touch, so backends do
/// not rescan every flow for every object.
#[derive(Default)]
pub struct FlowIndex<'a> {
    pub to_workload: BTreeMap<usize, Vec<&'a Flow>>,
    pub from_workload: BTreeMap<usize, Vec<&'a Flow>>,
    pub to_gateway: BTreeMap<usize, Vec<&'a Flow>>,
    pub from_gateway: BTreeMap<usize, Vec<&'a Flow>>,
    pub via_waypoint: BTreeMap<usize, Vec<&'a Flow>>,
}

impl<'a> FlowIndex<'a> {
    pub fn get<'m>(map: &'m BTreeMap<usize, Vec<&'a Flow>>, i: usize) -> &'m [&'a Flow] {
        map.get(&i).map_or(&[], Vec::as_slice)
    }
}

impl Ir {
    pub fn flow_index(&self) -> FlowIndex<'_> {
        let mut ix = FlowIndex::default();
        for f in &self.flows {
            match &f.dst {
                Dest::Workload { workload, .. } => ix.to_workload.entry(*workload).or_default().push(f),
                Dest::Gateway { gateway, .. } => ix.to_gateway.entry(*gateway).or_default().push(f),
                Dest::Fqdn { .. } | Dest::Cidr { .. } => {}
            }
            match &f.src {
                Peer::Workload(w) => ix.from_workload.entry(*w).or_default().push(f),
                Peer::Gateway(g) => ix.from_gateway.entry(*g).or_default().push(f),
                _ => {}
            }
            if let Some(v) = f.via {
                ix.via_waypoint.entry(v).or_default().push(f);
            }
        }
        ix
    }

    /// Names of the namespaces ztp enrolls and default-denies.
    pub fn namespace_names(&self) -> impl Iterator<Item = &str> {
        self.namespaces.iter().map(|n| n.name.as_str())
    }

    pub fn workload(&self, i: usize) -> Option<&Workload> {
        self.workloads.get(i)
    }

    pub fn gateway(&self, i: usize) -> Option<&Gateway> {
        self.gateways.get(i)
    }

    pub fn waypoint(&self, i: usize) -> Option<&Waypoint> {
        self.waypoints.get(i)
    }
}
