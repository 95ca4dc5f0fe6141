//! Istio's authorization as ztunnel and waypoints evaluate it: the
//! policies that bind ztunnel at a pod (its namespace's and the root
//! namespace's, without targetRefs, whose selector matches), the STRICT
//! implicit deny of PeerAuthentication, and the rule match of
//! AuthorizationPolicy — with ztunnel's reading of rules it cannot fully
//! see (`handleRule`): an ALLOW rule with an L7 field never matches, a
//! DENY rule loses its L7 fields and never fires when one of its entries
//! had only L7 fields, `trustDomains` is dropped, and only `source.*` and
//! `destination.*` `when` keys count.

use super::{Endpoint, Model, Step, at, cidr_of, list, name_of, pass, stop};
use crate::value::Cidr;
use serde_json::Value;
use std::collections::BTreeMap;

impl<'a> Model<'a> {
    /// ztunnel's inbound policy at `b` for a connection from `a`.
    pub(super) fn ztunnel(&self, a: &Endpoint, b: &Endpoint, port: u16, hbone: bool) -> Step {
        let ns = b.namespace.as_deref().unwrap_or("");
        let identity = if hbone { a.principal.as_deref() } else { None };
        if identity.is_none()
            && let Some(pa) = self.strict(ns, b, port)
        {
            return stop("ztunnel", name_of(pa), format!("STRICT: {} has no mesh identity", a.describe()));
        }
        let policies: Vec<&Value> = self
            .selector_authz
            .select(&[ns, self.root.as_str()], false, &b.labels)
            .into_iter()
            .filter(|p| super::labels_match(at(p, &["spec", "selector", "matchLabels"]), &b.labels))
            .collect();
        let q = Request {
            principal: identity,
            namespace: identity.and(a.namespace.as_deref()),
            address: a.address,
            port,
            method: None,
            path: None,
            headers: None,
        };
        authorize("ztunnel", &policies, &q, true)
    }

    /// The PeerAuthentication that makes `b`'s port STRICT, if one does:
    /// the most specific one with a mode (workload, then namespace, then
    /// the root namespace's); `portLevelMtls` on a workload policy first.
    /// DISABLE acts as PERMISSIVE; UNSET inherits.
    fn strict(&self, ns: &str, b: &Endpoint, port: u16) -> Option<&'a Value> {
        let empty = Vec::new();
        let here = self.peer_auth.get(ns).unwrap_or(&empty);
        let root = self.peer_auth.get(&self.root).unwrap_or(&empty);
        let workload = here.iter().copied().find(|p| {
            !at(p, &["spec", "selector"]).is_null()
                && super::labels_match(at(p, &["spec", "selector", "matchLabels"]), &b.labels)
        });
        let namespace = here.iter().copied().find(|p| at(p, &["spec", "selector"]).is_null());
        let mesh = root.iter().copied().find(|p| at(p, &["spec", "selector"]).is_null());
        let port_level = workload.and_then(|p| {
            let m = at(p, &["spec", "portLevelMtls", &port.to_string(), "mode"]).as_str()?;
            Some((p, m))
        });
        let mode = |p: &'a Value| Some((p, at(p, &["spec", "mtls", "mode"]).as_str()?));
        let effective = port_level
            .into_iter()
            .chain([workload, namespace, mesh].into_iter().flatten().filter_map(mode))
            .find(|(_, m)| *m != "UNSET");
        effective.filter(|(_, m)| *m == "STRICT").map(|(p, _)| p)
    }
}

/// Istio's evaluation: a matching DENY denies; if any ALLOW policy applies,
/// one of its rules must match; else allow. `l4_only` is ztunnel, which
/// cannot see L7 attributes: a rule that needs them never matches.
pub(super) fn authorize(layer: &'static str, policies: &[&Value], q: &Request<'_>, l4_only: bool) -> Step {
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
    // A DENY policy here that ztunnel never fires is named where the
    // connection gets through: the fail-open its author did not mean.
    let ignored: Vec<String> = if l4_only {
        enforced
            .iter()
            .filter(|p| action(p) == "DENY")
            .filter(|p| list(at(p, &["spec", "rules"])).iter().any(never_fires_at_ztunnel))
            .map(|p| name_of(p))
            .collect()
    } else {
        Vec::new()
    };
    let noting = |why: String| match ignored.as_slice() {
        [] => why,
        names => format!(
            "{why}; not enforced here: {}, a DENY rule with an entry of only L7 fields, which ztunnel never fires (it fails open)",
            names.join(", ")
        ),
    };
    if allows.is_empty() {
        return pass(layer, None, noting("no ALLOW policy applies".to_string()));
    }
    if let Some(p) = allows.iter().find(|p| list(at(p, &["spec", "rules"])).iter().any(rule_matches)) {
        return pass(layer, Some(name_of(p)), noting(format!("a rule admits {who} on port {port}")));
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
const L4_SOURCE: &[&str] = &[
    "principals",
    "notPrincipals",
    "namespaces",
    "notNamespaces",
    "ipBlocks",
    "notIpBlocks",
    "serviceAccounts",
    "notServiceAccounts",
];
const L7_SOURCE: &[&str] = &["requestPrincipals", "notRequestPrincipals", "remoteIpBlocks", "notRemoteIpBlocks"];
const L7_OPERATION: &[&str] = &["methods", "paths", "hosts", "notMethods", "notPaths", "notHosts"];
const L4_WHEN: &[&str] = &["source.ip", "source.namespace", "source.principal", "destination.ip", "destination.port"];

/// What a rule asks of a request.
pub(super) struct Request<'a> {
    pub principal: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// An external peer's address (pods' addresses are not modelled).
    pub address: Option<Cidr>,
    pub port: u16,
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    /// The request's headers, names lower-case (none at ztunnel).
    pub headers: Option<&'a BTreeMap<String, String>>,
}

fn has_any(entry: &Value, keys: &[&str]) -> bool {
    keys.iter().any(|k| !at(entry, &[k]).is_null())
}

/// Whether ztunnel drops this DENY rule whole: an entry has only L7
/// fields, or a `when` key is one it cannot read.
fn never_fires_at_ztunnel(r: &Value) -> bool {
    let l7_only_source = list(at(r, &["from"]))
        .iter()
        .any(|f| has_any(at(f, &["source"]), L7_SOURCE) && !has_any(at(f, &["source"]), L4_SOURCE));
    let l7_only_operation = list(at(r, &["to"])).iter().any(|t| {
        has_any(at(t, &["operation"]), L7_OPERATION) && !has_any(at(t, &["operation"]), &["ports", "notPorts"])
    });
    let l7_when =
        list(at(r, &["when"])).iter().any(|w| !at(w, &["key"]).as_str().is_some_and(|k| L4_WHEN.contains(&k)));
    l7_only_source || l7_only_operation || l7_when
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
        if l4_only && has_any(e, L7_SOURCE) && !has_any(e, L4_SOURCE) {
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
            _ if !l4_only && key.starts_with("request.headers[") && key.ends_with(']') => {
                let name = key.get("request.headers[".len()..key.len() - 1).unwrap_or("").to_ascii_lowercase();
                q.headers.and_then(|h| h.get(&name)).cloned()
            }
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

/// What ztunnel makes of a policy's rules that the policy's text does not
/// say (DOMAIN.md, `handleRule`), for the reader to warn about: an ALLOW
/// rule with an L7 field is dropped, a DENY rule with an L7-only entry
/// never fires, a DENY rule with L7 fields beside L4 ones denies more, and
/// `trustDomains` is dropped. Policies with targetRefs go to waypoints,
/// which read every field, so they get none of these.
pub(super) fn ztunnel_reading(policy: &Value) -> Vec<String> {
    let spec = at(policy, &["spec"]);
    if !at(spec, &["targetRefs"]).is_null() || !at(spec, &["targetRef"]).is_null() {
        return Vec::new();
    }
    let action = at(spec, &["action"]).as_str().unwrap_or("ALLOW");
    if action != "ALLOW" && action != "DENY" {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, r) in list(at(spec, &["rules"])).iter().enumerate() {
        let n = i + 1;
        let froms = list(at(r, &["from"]));
        if froms.iter().any(|f| !at(f, &["source", "trustDomains"]).is_null()) {
            out.push(format!(
                "rule {n}: ztunnel drops `trustDomains`: its condition disappears and the rule admits more than written"
            ));
        }
        if !rule_has_l7(r) {
            continue;
        }
        if action == "ALLOW" {
            out.push(format!(
                "rule {n} has L7 fields: ztunnel drops the ALLOW rule, so it admits nobody (enforce L7 at a waypoint with targetRefs)"
            ));
            continue;
        }
        if never_fires_at_ztunnel(r) {
            out.push(format!(
                "rule {n} has an entry with only L7 fields: ztunnel never fires this DENY rule (it fails open)"
            ));
        } else {
            out.push(format!(
                "rule {n}: ztunnel drops its L7 fields and denies every request its L4 fields match (more than written)"
            ));
        }
    }
    out
}
