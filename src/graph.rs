//! `ztp graph`: the program's allowed flows as a picture, in Graphviz dot
//! or Mermaid. Workloads and gateways are grouped by namespace; `world`,
//! external names and CIDRs are nodes outside every namespace; each flow is
//! an edge labelled with its ports and, for L7 flows, the methods and paths
//! its waypoint allows. The output is deterministic: nodes and edges follow
//! the IR's sorted tables. `draw` is shared with the picture of a
//! manifest set (`verify::estate`).

use crate::ir::{Dest, Flow, Ir, Peer};
use std::collections::BTreeMap;

/// The output language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Dot,
    Mermaid,
}

/// A node of the picture.
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) label: String,
    /// `None` outside every namespace.
    pub(crate) namespace: Option<String>,
    pub(crate) external: bool,
}

fn node_of_peer(ir: &Ir, p: &Peer) -> Option<Node> {
    Some(match p {
        Peer::Workload(w) => {
            let w = ir.workload(*w)?;
            Node {
                id: id(&format!("w-{}-{}", w.namespace, w.name)),
                label: w.name.clone(),
                namespace: Some(w.namespace.clone()),
                external: false,
            }
        }
        Peer::Gateway(g) => {
            let g = ir.gateway(*g)?;
            Node {
                id: id(&format!("g-{}-{}", g.namespace, g.name)),
                label: format!("{} (gateway)", g.name),
                namespace: Some(g.namespace.clone()),
                external: false,
            }
        }
        Peer::World => Node { id: "world".into(), label: "world".into(), namespace: None, external: true },
        Peer::Namespace { name, except } => {
            let label = if except.is_empty() { "every pod".to_string() } else { "every other pod".to_string() };
            Node { id: id(&format!("ns-{name}-{except:?}")), label, namespace: Some(name.clone()), external: false }
        }
        Peer::Cidr(set) => {
            let label = set.cidr.to_string();
            Node { id: id(&format!("cidr-{label}")), label, namespace: None, external: true }
        }
    })
}

fn node_of_dest(ir: &Ir, d: &Dest) -> Option<(Node, String)> {
    Some(match d {
        Dest::Workload { workload, ports } => {
            let n = node_of_peer(ir, &Peer::Workload(*workload))?;
            let ports: Vec<String> = ports.iter().map(|p| format!("{}/{}", p.name, p.number)).collect();
            (n, ports.join(", "))
        }
        Dest::Gateway { gateway, ports } => {
            let n = node_of_peer(ir, &Peer::Gateway(*gateway))?;
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            (n, ports.join(", "))
        }
        Dest::Fqdn { name, port } => {
            let label = name.as_str().to_string();
            (Node { id: id(&format!("dns-{label}")), label, namespace: None, external: true }, port.to_string())
        }
        Dest::Cidr { set, port } => {
            let mut label = set.cidr.to_string();
            if !set.except.is_empty() {
                let ex: Vec<String> = set.except.iter().map(ToString::to_string).collect();
                label.push_str(&format!(" except {}", ex.join(", ")));
            }
            (Node { id: id(&format!("cidr-{label}")), label, namespace: None, external: true }, port.to_string())
        }
    })
}

/// A node id both languages accept.
pub(crate) fn id(raw: &str) -> String {
    raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn edge_label(f: &Flow, ports: &str) -> String {
    match &f.http {
        None => ports.to_string(),
        Some(h) => {
            let methods: Vec<&str> = h.methods.iter().map(|m| m.as_str()).collect();
            let mut l7 = if methods.is_empty() { "any method".to_string() } else { methods.join(",") };
            if !h.paths.is_empty() {
                l7.push(' ');
                l7.push_str(&h.paths.join(","));
            }
            format!("{ports} · {l7}")
        }
    }
}

fn escape(s: &str, format: Format) -> String {
    match format {
        Format::Dot => s.replace('\\', "\\\\").replace('"', "\\\""),
        Format::Mermaid => s.replace('"', "#quot;"),
    }
}

/// Renders the program's flows.
pub fn render(ir: &Ir, format: Format) -> String {
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut edges: Vec<(String, String, String)> = Vec::new();
    // Every workload and gateway is drawn, with flows or without.
    for i in 0..ir.workloads.len() {
        if let Some(n) = node_of_peer(ir, &Peer::Workload(i)) {
            nodes.entry(n.id.clone()).or_insert(n);
        }
    }
    for i in 0..ir.gateways.len() {
        if let Some(n) = node_of_peer(ir, &Peer::Gateway(i)) {
            nodes.entry(n.id.clone()).or_insert(n);
        }
    }
    for f in &ir.flows {
        let (Some(src), Some((dst, ports))) = (node_of_peer(ir, &f.src), node_of_dest(ir, &f.dst)) else { continue };
        let edge = (src.id.clone(), dst.id.clone(), edge_label(f, &ports));
        // A flow the IR splits in two paths (pod IPs and the Service) is one edge.
        if !edges.contains(&edge) {
            edges.push(edge);
        }
        nodes.entry(src.id.clone()).or_insert(src);
        nodes.entry(dst.id.clone()).or_insert(dst);
    }
    draw(&ir.stack, &nodes, &edges, format)
}

/// Draws nodes (grouped by namespace) and labelled edges, in order.
pub(crate) fn draw(
    title: &str,
    nodes: &BTreeMap<String, Node>,
    edges: &[(String, String, String)],
    format: Format,
) -> String {
    let mut by_ns: BTreeMap<Option<String>, Vec<&Node>> = BTreeMap::new();
    for n in nodes.values() {
        by_ns.entry(n.namespace.clone()).or_default().push(n);
    }
    let mut out = String::new();
    match format {
        Format::Dot => {
            out.push_str(&format!(
                "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n",
                escape(title, format)
            ));
            for (ns, members) in &by_ns {
                let indent = if ns.is_some() { "    " } else { "  " };
                if let Some(ns) = ns {
                    out.push_str(&format!(
                        "  subgraph \"cluster_{}\" {{\n    label=\"{}\";\n",
                        id(ns),
                        escape(ns, format)
                    ));
                }
                for n in members {
                    let shape = if n.external { ", shape=ellipse" } else { "" };
                    out.push_str(&format!("{indent}{} [label=\"{}\"{shape}];\n", n.id, escape(&n.label, format)));
                }
                if ns.is_some() {
                    out.push_str("  }\n");
                }
            }
            for (a, b, l) in edges {
                out.push_str(&format!("  {a} -> {b} [label=\"{}\"];\n", escape(l, format)));
            }
            out.push_str("}\n");
        }
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            for (ns, members) in &by_ns {
                let indent = if ns.is_some() { "    " } else { "  " };
                if let Some(ns) = ns {
                    out.push_str(&format!("  subgraph ns_{}[\"{}\"]\n", id(ns), escape(ns, format)));
                }
                for n in members {
                    let (open, close) = if n.external { ("([\"", "\"])") } else { ("[\"", "\"]") };
                    out.push_str(&format!("{indent}{}{open}{}{close}\n", n.id, escape(&n.label, format)));
                }
                if ns.is_some() {
                    out.push_str("  end\n");
                }
            }
            for (a, b, l) in edges {
                out.push_str(&format!("  {a} -->|\"{}\"| {b}\n", escape(l, format)));
            }
        }
    }
    out
}
