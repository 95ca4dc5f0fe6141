//! Questions about a set of manifests without a program (`--manifests
//! DIR`): `explain`, expectations from a file of `allow|deny` lines,
//! `graph` and `diff`, over the endpoints `inventory.rs` finds and the
//! model in its steady state (hand-written YAML carries no status, so every
//! waypoint a Service names is taken as bound once its Gateway exists).
//! "Can A reach B" asks whether some request gets through: the bare
//! connection, or one of the requests the waypoint's ALLOW rules name.
//! Names of flows and the order of answers follow the inventory's sorted
//! endpoints, so the output is deterministic.

use super::diff::Change;
use super::expect::Outcome;
use super::inventory::{Inventory, Target};
use super::manifests::{self, ManifestSet, Problem, Severity};
use super::report::Explained;
use super::{Endpoint, Flow, Model, Step, Verdict, at, list};
use crate::hir::Verdict as Expected;
use crate::source::{Origin, SourceMap, Span};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A manifest set with its endpoints.
pub struct Estate {
    pub set: ManifestSet,
    pub inventory: Inventory,
    pub root_namespace: String,
}

/// A warning for each AuthorizationPolicy that targets a Service no
/// waypoint takes: it is enforced nowhere.
fn unbound_targets(set: &ManifestSet, root_namespace: &str) -> Vec<Problem> {
    let model = Model::steady(&set.objects, root_namespace);
    let mut out = Vec::new();
    for p in set.objects.iter().filter(|o| at(o, &["kind"]).as_str() == Some("AuthorizationPolicy")) {
        let ns = at(p, &["metadata", "namespace"]).as_str().unwrap_or("default");
        let name = super::name_of(p);
        let (file, line) = set
            .sources
            .get(&name)
            .and_then(|s| s.rsplit_once(':'))
            .map_or((String::new(), 1), |(f, l)| (f.to_string(), l.parse().unwrap_or(1)));
        for r in list(at(p, &["spec", "targetRefs"])) {
            if at(r, &["kind"]).as_str() != Some("Service") || !at(r, &["group"]).as_str().is_none_or(str::is_empty) {
                continue;
            }
            let Some(svc) = at(r, &["name"]).as_str() else { continue };
            if let Some(why) = model.unbound_service(ns, svc) {
                out.push(Problem {
                    severity: Severity::Warning,
                    file: file.clone(),
                    line,
                    column: 1,
                    message: format!("{name}: enforced nowhere (AncestorNotBound): {why}"),
                });
            }
        }
    }
    out
}

/// A request: method and path.
pub type Request = (String, String);

impl Estate {
    /// Reads every YAML file under `dir` (see `manifests.rs`).
    pub fn read(dir: &Path, trust_domain: &str, root_namespace: &str) -> std::io::Result<Estate> {
        Ok(Estate::from_files(&manifests::read_dir(dir)?, trust_domain, root_namespace))
    }

    /// Reads `(name, text)` files.
    pub fn from_files(files: &[(String, String)], trust_domain: &str, root_namespace: &str) -> Estate {
        let mut set = manifests::parse(files);
        let unbound = unbound_targets(&set, root_namespace);
        set.problems.extend(unbound);
        let inventory = Inventory::new(&set.objects, trust_domain);
        if !set.objects.is_empty() && !inventory.endpoints.iter().any(|e| e.kind != "Gateway") {
            set.notes.push(
                "no workloads (Deployment, StatefulSet, DaemonSet, Job, CronJob or Pod): flows are only asked of \
                 gateways and addresses; add the workloads' YAML to ask about pods"
                    .to_string(),
            );
        }
        Estate { set, inventory, root_namespace: root_namespace.to_string() }
    }

    pub fn model(&self) -> Model<'_> {
        Model::steady(&self.set.objects, &self.root_namespace).with_sources(self.set.sources.clone())
    }
}

fn flow_of(src: &Endpoint, t: &Target, request: Option<&Request>) -> Flow {
    Flow {
        src: src.clone(),
        dst: t.endpoint.clone(),
        service: t.service.clone(),
        port: t.port,
        method: request.map(|r| r.0.clone()),
        path: request.map(|r| r.1.clone()),
        headers: Default::default(),
    }
}

fn with_request(f: &Flow, r: &Request) -> Flow {
    Flow { method: Some(r.0.clone()), path: Some(r.1.clone()), ..f.clone() }
}

/// Judges `f` by "some request gets through" when it names none: the
/// bare connection first, then each request its waypoint's rules name.
/// Returns the flow as asked (with the request that got through, if one
/// did), the verdict and the steps.
pub fn judge(model: &Model<'_>, f: &Flow) -> (Flow, Verdict, Vec<Step>) {
    let (verdict, steps) = model.explain(f);
    if verdict.allowed() || f.method.is_some() {
        return (f.clone(), verdict, steps);
    }
    for r in model.requests_toward(f) {
        let g = with_request(f, &r);
        let (v, s) = model.explain(&g);
        if v.allowed() {
            return (g, v, s);
        }
    }
    (f.clone(), verdict, steps)
}

fn sourced(model: &Model<'_>, steps: Vec<Step>) -> Vec<(Step, Option<String>)> {
    steps
        .into_iter()
        .map(|s| {
            let source = s.object.as_deref().and_then(|o| model.source_of(o)).map(str::to_string);
            (s, source)
        })
        .collect()
}

/// `ztp explain --manifests`: each concrete flow of `src -> dst`.
pub fn explain(
    estate: &Estate,
    model: &Model<'_>,
    src: &str,
    dst: &str,
    request: Option<&Request>,
    headers: &BTreeMap<String, String>,
    pod_ip: bool,
) -> Result<Vec<Explained>, String> {
    let (src_name, from) = estate.inventory.source(src)?;
    let targets = estate.inventory.destination(dst, pod_ip)?;
    Ok(targets
        .iter()
        .map(|t| {
            let asked = Flow { headers: headers.clone(), ..flow_of(&from, t, request) };
            let (flow, verdict, steps) = judge(model, &asked);
            Explained { name: format!("{src_name} -> {}", t.name), flow, verdict, steps: sourced(model, steps) }
        })
        .collect())
}

/// One line of an expectations file.
#[derive(Clone, Debug)]
pub struct Expectation {
    pub span: Span,
    pub verdict: Expected,
    pub src: String,
    pub dst: String,
    pub request: Option<Request>,
    pub pod_ip: bool,
}

/// Reads an expectations file: one `[expect] allow|deny SRC -> DST[:PORT]
/// [METHOD [PATH]] [pod-ip]` per line; `#` starts a comment.
pub fn parse_expectations(name: &str, text: &str, sources: &mut SourceMap) -> (Vec<Expectation>, Vec<Problem>) {
    let id = sources.add(name, Origin::File(name.into()), text);
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut offset = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let lo = offset;
        offset += raw.len();
        let line = raw.split(" #").next().unwrap_or(raw).trim_end();
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let start = lo + (line.len() - content.len());
        let span = Span::new(id, start, start + content.len());
        let problem = |message: String| Problem {
            severity: Severity::Error,
            file: name.to_string(),
            line: i + 1,
            column: 1 + line.len() - content.len(),
            message,
        };
        let words = content.strip_prefix("expect ").unwrap_or(content).trim_start();
        let (verdict, rest) = if let Some(r) = words.strip_prefix("allow ") {
            (Expected::Allow, r)
        } else if let Some(r) = words.strip_prefix("deny ") {
            (Expected::Deny, r)
        } else {
            problems.push(problem("expected `allow SRC -> DST` or `deny SRC -> DST`".into()));
            continue;
        };
        let Some((src, right)) = rest.split_once("->") else {
            problems.push(problem("expected `SRC -> DST`: the arrow is missing".into()));
            continue;
        };
        let mut tail: Vec<&str> = right.split_whitespace().collect();
        let pod_ip = tail.last() == Some(&"pod-ip");
        if pod_ip {
            tail.pop();
        }
        let (dst, request) = match tail.as_slice() {
            [dst] => (*dst, None),
            [dst, m] => (*dst, Some((m.to_ascii_uppercase(), "/".to_string()))),
            [dst, m, p] => (*dst, Some((m.to_ascii_uppercase(), p.to_string()))),
            _ => {
                problems.push(problem("expected `DST[:PORT] [METHOD [PATH]] [pod-ip]` after the arrow".into()));
                continue;
            }
        };
        if let Some((m, _)) = &request
            && !crate::value::HTTP_METHODS.iter().any(|(name, _)| name == m)
        {
            problems.push(problem(format!("`{m}` is not an HTTP method")));
            continue;
        }
        let src = src.trim();
        if src.is_empty() || src.contains(char::is_whitespace) {
            problems.push(problem("expected one source before the arrow".into()));
            continue;
        }
        out.push(Expectation { span, verdict, src: src.to_string(), dst: dst.to_string(), request, pod_ip });
    }
    (out, problems)
}

/// Judges every expectation: `allow` holds when every port of the
/// destination lets a request through (the one named, or some request),
/// `deny` when none does. Names the manifests do not know are problems
/// at their line.
pub fn run_expectations(
    estate: &Estate,
    model: &Model<'_>,
    expectations: &[Expectation],
    sources: &SourceMap,
) -> (Vec<Outcome>, Vec<Problem>) {
    let mut outcomes = Vec::new();
    let mut problems = Vec::new();
    for e in expectations {
        let question = estate
            .inventory
            .source(&e.src)
            .and_then(|(n, from)| Ok((n, from, estate.inventory.destination(&e.dst, e.pod_ip)?)));
        let (src_name, from, targets) = match question {
            Ok(q) => q,
            Err(message) => {
                let (file, line, column) = match sources.get(e.span.source) {
                    Some(f) => {
                        let (l, c) = f.line_col(e.span.lo);
                        (f.name.clone(), l, c)
                    }
                    None => (String::new(), 0, 0),
                };
                problems.push(Problem { severity: Severity::Error, file, line, column, message });
                continue;
            }
        };
        let failure = targets.iter().find_map(|t| {
            let (_, verdict, _) = judge(model, &flow_of(&from, t, e.request.as_ref()));
            let name = format!("{src_name} -> {}", t.name);
            match (e.verdict, verdict.allowed()) {
                (Expected::Allow, false) | (Expected::Deny, true) => Some((name, verdict)),
                _ => None,
            }
        });
        outcomes.push(Outcome { span: e.span, verdict: e.verdict, failure });
    }
    (outcomes, problems)
}

/// The external destinations the Cilium egress rules name (FQDNs, TLS
/// server names, CIDRs, `world`), with the ports they list (0: any).
fn externals(objects: &[Value]) -> Vec<Target> {
    let mut out: BTreeMap<String, Target> = BTreeMap::new();
    let mut add = |endpoint: Endpoint, label: String, ports: &[u16]| {
        for p in ports {
            let port_text = if *p == 0 { "any".to_string() } else { p.to_string() };
            let name = format!("{label}:{port_text}");
            out.entry(name.clone()).or_insert(Target { name, endpoint: endpoint.clone(), service: None, port: *p });
        }
    };
    for o in objects {
        if !at(o, &["kind"])
            .as_str()
            .is_some_and(|k| k.starts_with("CiliumNetworkPolicy") || k.starts_with("CiliumClusterwide"))
        {
            continue;
        }
        for rule in list(at(o, &["spec", "egress"])) {
            let mut ports: Vec<u16> = list(at(rule, &["toPorts"]))
                .iter()
                .flat_map(|tp| list(at(tp, &["ports"])))
                .filter_map(|p| {
                    let v = at(p, &["port"]);
                    v.as_u64().and_then(|n| u16::try_from(n).ok()).or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .collect();
            if ports.is_empty() {
                ports.push(0);
            }
            ports.sort_unstable();
            ports.dedup();
            for f in list(at(rule, &["toFQDNs"])) {
                let name = at(f, &["matchName"])
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| at(f, &["matchPattern"]).as_str().map(|p| p.replace("**.", "a.").replace('*', "a")));
                if let Some(n) = name.map(|n| n.trim_end_matches('.').to_ascii_lowercase()) {
                    add(Endpoint::external_name(&n), n, &ports);
                }
            }
            for tp in list(at(rule, &["toPorts"])) {
                for s in list(at(tp, &["serverNames"])).iter().filter_map(Value::as_str) {
                    let n = s.replace("**.", "a.").replace('*', "a").to_ascii_lowercase();
                    add(Endpoint::external_name(&n), n, &ports);
                }
            }
            let cidrs = list(at(rule, &["toCIDR"])).iter().filter_map(|c| c.as_str().map(|c| (c, Vec::new())));
            let sets = list(at(rule, &["toCIDRSet"])).iter().filter_map(|c| {
                let except: Vec<&str> = list(at(c, &["except"])).iter().filter_map(Value::as_str).collect();
                Some((at(c, &["cidr"]).as_str()?, except))
            });
            for (cidr, except) in cidrs.chain(sets) {
                let parse = |t: &str| crate::value::parse_cidr(t, Span::default()).ok();
                let Some(cidr) = parse(cidr) else { continue };
                let set = crate::ir::CidrSet { cidr, except: except.into_iter().filter_map(parse).collect() };
                let a = super::intent::address_of(&set);
                add(Endpoint::external_address(a), a.addr.to_string(), &ports);
            }
            if list(at(rule, &["toEntities"])).iter().any(|e| matches!(e.as_str(), Some("world" | "all")))
                && list(at(rule, &["toPorts"])).iter().all(|tp| list(at(tp, &["serverNames"])).is_empty())
            {
                add(Endpoint::world(), "world".into(), &ports);
            }
        }
    }
    out.into_values().collect()
}

/// The questions `graph` and `diff` ask: every workload and gateway to
/// every port of every other, to every external destination the egress
/// rules name, and the world to every gateway listener.
fn questions(estate: &Estate) -> Vec<(String, Endpoint, Target)> {
    let inv = &estate.inventory;
    let ext = externals(&estate.set.objects);
    let mut out = Vec::new();
    for src in &inv.endpoints {
        for dst in inv.endpoints.iter().filter(|d| d.id() != src.id()) {
            for p in &dst.ports {
                if let Ok(ts) = inv.destination(&format!("{}:{}", dst.id(), p.number), false) {
                    out.extend(ts.into_iter().map(|t| (src.id(), src.endpoint.clone(), t)));
                }
            }
        }
        if src.kind != "Gateway" {
            out.extend(ext.iter().map(|t| (src.id(), src.endpoint.clone(), t.clone())));
        }
    }
    for gw in inv.endpoints.iter().filter(|g| g.kind == "Gateway") {
        for p in &gw.ports {
            if let Ok(ts) = inv.destination(&format!("{}:{}", gw.id(), p.number), false) {
                out.extend(ts.into_iter().map(|t| ("world".to_string(), Endpoint::world(), t)));
            }
        }
    }
    out
}

/// The requests that get through on one question: `None` for the bare
/// connection, else the L7 requests its waypoint admits.
fn admitted(model: &Model<'_>, f: &Flow) -> Option<Vec<Request>> {
    if model.check(f).allowed() {
        return Some(Vec::new());
    }
    let through: Vec<Request> =
        model.requests_toward(f).into_iter().filter(|r| model.check(&with_request(f, r)).allowed()).collect();
    (!through.is_empty()).then_some(through)
}

/// `ztp graph --manifests`: the flows the model allows, as a picture.
pub fn graph(estate: &Estate, model: &Model<'_>, title: &str, format: crate::graph::Format) -> String {
    use crate::graph::{Node, id};
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let node_id = |ns: &str, name: &str| id(&format!("w-{ns}-{name}"));
    for e in &estate.inventory.endpoints {
        let label = if e.kind == "Gateway" { format!("{} (gateway)", e.name) } else { e.name.clone() };
        let n =
            Node { id: node_id(&e.namespace, &e.name), label, namespace: Some(e.namespace.clone()), external: false };
        nodes.insert(n.id.clone(), n);
    }
    // (src, dst) → (L7 summary → ports)
    let mut edges: BTreeMap<(String, String), BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (src_name, from, t) in questions(estate) {
        let f = flow_of(&from, &t, None);
        let Some(requests) = admitted(model, &f) else { continue };
        let src = match src_name.split_once('/') {
            Some((ns, name)) => node_id(ns, name),
            None => "world".to_string(),
        };
        let (dst, port_label) = match (&t.endpoint.namespace, t.name.rsplit_once(':')) {
            (Some(ns), Some((who, port))) => {
                let name = who.rsplit('/').next().unwrap_or(who);
                let pname = estate
                    .inventory
                    .endpoints
                    .iter()
                    .find(|e| e.namespace == *ns && e.name == name)
                    .and_then(|e| e.ports.iter().find(|p| p.number == t.port))
                    .map_or_else(|| port.to_string(), |p| format!("{}/{}", p.name, p.number));
                (node_id(ns, name), pname)
            }
            (_, Some((who, port))) => {
                let n = Node { id: id(&format!("ext-{who}")), label: who.to_string(), namespace: None, external: true };
                let nid = n.id.clone();
                nodes.entry(nid.clone()).or_insert(n);
                (nid, port.to_string())
            }
            _ => continue,
        };
        if src == "world" {
            nodes.entry(src.clone()).or_insert(Node {
                id: "world".into(),
                label: "world".into(),
                namespace: None,
                external: true,
            });
        }
        let mut methods: Vec<&str> = Vec::new();
        let mut paths: Vec<&str> = Vec::new();
        for (m, p) in &requests {
            if !methods.contains(&m.as_str()) {
                methods.push(m);
            }
            if !paths.contains(&p.as_str()) {
                paths.push(p);
            }
        }
        let l7 =
            if requests.is_empty() { String::new() } else { format!(" · {} {}", methods.join(","), paths.join(",")) };
        edges.entry((src, dst)).or_default().entry(l7).or_default().push(port_label);
    }
    let mut lines = Vec::new();
    for ((a, b), by_l7) in edges {
        for (l7, ports) in by_l7 {
            lines.push((a.clone(), b.clone(), format!("{}{l7}", ports.join(", "))));
        }
    }
    crate::graph::draw(title, &nodes, &lines, format)
}

/// `ztp diff` of two manifest sets: every question either set asks
/// (`questions`), judged in both; the flows whose verdict changed, with
/// the objects of the new set that decide them.
pub fn diff(old: &Estate, new: &Estate) -> Vec<Change> {
    let (old_model, new_model) = (old.model(), new.model());
    let mut asked: BTreeMap<String, (Endpoint, Target)> = BTreeMap::new();
    for (src, from, t) in questions(new).into_iter().chain(questions(old)) {
        asked.entry(format!("{src} -> {}", t.name)).or_insert((from, t));
    }
    let mut out = Vec::new();
    for (name, (from, t)) in asked {
        let f = flow_of(&from, &t, None);
        let (before_flow, before, _) = judge(&old_model, &f);
        let (after_flow, after, steps) = judge(&new_model, &f);
        if before.allowed() == after.allowed() {
            continue;
        }
        // A newly denied flow is explained with the request that used to get through.
        let now_allowed = after.allowed();
        let (asked_flow, verdict, steps) = if now_allowed {
            (after_flow, after, steps)
        } else {
            match new_model.explain(&before_flow) {
                (v, s) if !v.allowed() => (before_flow, v, s),
                _ => (after_flow, after, steps),
            }
        };
        let deciding: Vec<Step> = match verdict {
            Verdict::Allowed => steps.into_iter().filter(|s| s.object.is_some()).collect(),
            Verdict::Denied { .. } => steps.into_iter().filter(|s| !s.allowed).collect(),
        };
        out.push(Change {
            flow: name,
            method: asked_flow.method,
            path: asked_flow.path,
            headers: asked_flow.headers,
            now_allowed,
            because: sourced(&new_model, deciding),
        });
    }
    out
}
