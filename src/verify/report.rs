//! What `ztp explain`, `ztp diff` and `ztp test` print: the model's
//! answers as text for people and JSON for tools. The CLI only parses
//! arguments and calls these; every layout lives here, once.

use super::diff::Change;
use super::expect::Outcome;
use super::{Flow, Model, Step, Verdict, intent};
use crate::ir::{Dest, Http, Ir, Peer};
use crate::manifest::Manifest;
use crate::source::SourceMap;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// ` (GET /path, name: value)`: a flow's request (method and path, then
/// any headers); empty for a plain connection.
fn request(method: Option<&str>, path: Option<&str>, headers: &BTreeMap<String, String>) -> String {
    let req = method.map(|m| format!(" ({m} {})", path.unwrap_or("/"))).unwrap_or_default();
    if headers.is_empty() {
        return req;
    }
    let headers: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    match req.strip_suffix(')') {
        Some(open) => format!("{open}, {})", headers.join(", ")),
        None => format!(" ({})", headers.join(", ")),
    }
}

fn step_json(s: &Step, source: Option<&str>) -> Value {
    json!({"hop": s.hop, "layer": s.layer, "allowed": s.allowed, "object": s.object, "source": source, "why": s.why})
}

fn pretty(v: &Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
}

/// One concrete flow, judged, with the `.ztp` line of each step's object.
pub struct Explained {
    pub name: String,
    pub flow: Flow,
    pub verdict: Verdict,
    pub steps: Vec<(Step, Option<String>)>,
}

/// The request an unasked question toward an L7 destination stands for:
/// the first of its rules' requests, preferring the source's own flow.
pub fn default_http(ir: &Ir, src: &Peer, dst: &Dest) -> Option<Http> {
    ir.flows
        .iter()
        .filter(|f| f.http.is_some() && super::expect::same_dest(&f.dst, dst))
        .min_by_key(|f| f.src != *src)
        .and_then(|f| f.http.clone())
}

/// Judges `src -> dst` over what `ir` emits, in its steady state.
pub fn explain(ir: &Ir, src: &Peer, dst: &Dest, http: Option<&Http>) -> Vec<Explained> {
    explain_over(ir, &crate::backend::emit(ir), src, dst, http)
}

/// Judges `src -> dst` over `manifests`, what `ir` emitted. Only the
/// objects that can bear on these flows are read into the model (see
/// [`bearing_on`]), so one question on a large estate does not parse
/// every policy of it.
pub fn explain_over(ir: &Ir, manifests: &[Manifest], src: &Peer, dst: &Dest, http: Option<&Http>) -> Vec<Explained> {
    let flows = intent::flows(ir, src, dst, http);
    let objects: Vec<Value> =
        bearing_on(manifests, &flows, &ir.mesh.root_namespace).into_iter().map(Manifest::to_value).collect();
    let model = Model::steady(&objects, &ir.mesh.root_namespace);
    flows
        .into_iter()
        .map(|(name, flow)| {
            let (verdict, steps) = model.explain(&flow);
            let steps = steps
                .into_iter()
                .map(|s| {
                    let source = s.object.as_deref().and_then(|o| model.source_of(o)).map(str::to_string);
                    (s, source)
                })
                .collect();
            Explained { name, flow, verdict, steps }
        })
        .collect()
}

/// The objects that can decide `flows`: every cluster-wide object, and
/// the namespaced ones of the root namespace, of each flow's source and
/// destination, and of any other namespace whose waypoint a destination's
/// Service or Namespace names (`istio.io/use-waypoint-namespace`). Cilium
/// reads the source's and destination's (and a waypoint's) policies,
/// ztunnel the destination's and the root's, a waypoint its own
/// namespace's; no other namespace's object can change a verdict.
pub fn bearing_on<'m>(manifests: &'m [Manifest], flows: &[(String, Flow)], root: &str) -> Vec<&'m Manifest> {
    let mut namespaces: std::collections::BTreeSet<&str> = std::collections::BTreeSet::from([root]);
    for (_, f) in flows {
        namespaces.extend(f.src.namespace.as_deref());
        namespaces.extend(f.dst.namespace.as_deref());
    }
    let waypoints: Vec<&str> = manifests
        .iter()
        .filter(|m| match (m.kind, m.namespace.as_deref()) {
            ("Service", Some(ns)) => namespaces.contains(ns),
            ("Namespace", _) => namespaces.contains(m.name.as_str()),
            _ => false,
        })
        .filter_map(|m| m.labels.get("istio.io/use-waypoint-namespace").map(String::as_str))
        .collect();
    manifests
        .iter()
        .filter(|m| m.namespace.as_deref().is_none_or(|ns| namespaces.contains(ns) || waypoints.contains(&ns)))
        .collect()
}

fn word(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

pub fn explain_text(es: &[Explained]) -> String {
    let mut text = String::new();
    for e in es {
        let req = request(e.flow.method.as_deref(), e.flow.path.as_deref(), &e.flow.headers);
        text.push_str(&format!("{}{req}: {}\n", e.name, word(e.verdict.allowed())));
        let mut hop = "";
        for (s, source) in &e.steps {
            if s.hop != hop {
                hop = &s.hop;
                text.push_str(&format!("\n  {hop}\n"));
            }
            let object = s.object.as_deref().unwrap_or("-");
            let at = source.as_ref().map(|s| format!(" ({s})")).unwrap_or_default();
            let decision = if s.allowed { "allows" } else { "DENIES" };
            text.push_str(&format!("    {:<9}{decision}  {object}{at}\n             {}\n", s.layer, s.why));
        }
        text.push('\n');
    }
    text
}

pub fn explain_json(es: &[Explained]) -> String {
    let flows: Vec<Value> = es
        .iter()
        .map(|e| {
            let steps: Vec<Value> = e.steps.iter().map(|(s, src)| step_json(s, src.as_deref())).collect();
            json!({"flow": e.name, "method": e.flow.method, "path": e.flow.path, "headers": e.flow.headers, "port": e.flow.port,
                "verdict": word(e.verdict.allowed()), "steps": steps})
        })
        .collect();
    pretty(&json!({ "flows": flows }))
}

pub fn diff_text(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "No reachability changes.\n".to_string();
    }
    let mut out = String::from("Reachability changes:\n");
    for c in changes {
        let (sign, what) = if c.now_allowed { ("+", "newly allowed") } else { ("-", "newly denied") };
        out.push_str(&format!(
            "\n  {sign} {}{} {what}\n",
            c.flow,
            request(c.method.as_deref(), c.path.as_deref(), &c.headers)
        ));
        for (s, src) in &c.because {
            let at = src.as_ref().map(|s| format!(" ({s})")).unwrap_or_default();
            let by = if s.allowed { "admitted by" } else { "denied by" };
            out.push_str(&format!("      {} {by} {}{at}: {}\n", s.layer, s.object.as_deref().unwrap_or("-"), s.why));
        }
    }
    let allowed = changes.iter().filter(|c| c.now_allowed).count();
    let flows = if allowed == 1 { "1 flow".to_string() } else { format!("{allowed} flows") };
    out.push_str(&format!("\n{flows} newly allowed, {} newly denied.\n", changes.len() - allowed));
    out
}

pub fn diff_json(changes: &[Change]) -> String {
    let items: Vec<Value> = changes
        .iter()
        .map(|c| {
            let because: Vec<Value> = c.because.iter().map(|(s, src)| step_json(s, src.as_deref())).collect();
            json!({"flow": c.flow, "method": c.method, "path": c.path, "headers": c.headers,
                "change": word(c.now_allowed), "because": because})
        })
        .collect();
    pretty(&json!({"changes": items, "changed": !changes.is_empty()}))
}

/// `text` with its `//` comments removed (none are inside strings), so
/// that an `expect` over several lines reads as one.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped, mut in_comment) = (false, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
                out.push(c);
            }
            continue;
        }
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '"' {
            in_string = true;
        } else if c == '/' && chars.peek() == Some(&'/') {
            in_comment = true;
            continue;
        }
        out.push(c);
    }
    out
}

/// `ztp test`'s listing, and how many expectations failed.
pub fn test_text(outcomes: &[Outcome], sources: &SourceMap) -> (String, usize) {
    let mut out = String::new();
    let mut failed = 0;
    for o in outcomes {
        let text = sources.text(o.span.source).get(o.span.lo..o.span.hi).unwrap_or("");
        let line = without_comments(text).split_whitespace().collect::<Vec<_>>().join(" ");
        let at = sources.location(o.span);
        match &o.failure {
            None => out.push_str(&format!("ok    {at}  {line}\n")),
            Some((flow, verdict)) => {
                failed += 1;
                let why = match verdict {
                    Verdict::Allowed => format!("{flow} is allowed by every layer"),
                    Verdict::Denied { layer, object, why } => format!("{flow} is denied by {layer} ({object}): {why}"),
                };
                out.push_str(&format!("FAIL  {at}  {line}\n      {why}\n"));
            }
        }
    }
    out.push_str(&format!("\n{} passed, {failed} failed\n", outcomes.len() - failed));
    (out, failed)
}

#[cfg(test)]
mod tests {
    use super::without_comments;

    #[test]
    fn comments_go_and_strings_stay() {
        assert_eq!(without_comments("a { // note\n  b \"//x\\\"//\" } // end"), "a { \n  b \"//x\\\"//\" } ");
    }
}
