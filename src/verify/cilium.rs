//! Cilium's verdict for one endpoint and direction (DOMAIN.md, Cilium
//! policy language): a matching deny wins; else the endpoint is default
//! deny for the direction if any selecting CiliumNetworkPolicy or
//! CiliumClusterwideNetworkPolicy has a section for it without
//! `enableDefaultDeny: false`, or a NetworkPolicy selects it for that
//! direction; then some allow rule of either kind must admit the peer and
//! port. Peers are endpoint selectors (confined to a CNP's namespace
//! unless they name one), entities, CIDRs with `except`, and `toFQDNs`,
//! which match only names one of the endpoint's DNS rules lets it look up
//! (`matchPattern` as Cilium's code reads it); `serverNames` admit only a
//! connection whose TLS name matches.

use super::{Direction, Endpoint, Model, NS_LABEL, Step, at, cidr_of, list, name_of, pass, stop, strip_source};
use crate::value::Cidr;
use serde_json::Value;
use std::collections::BTreeMap;

const SA_LABEL: &str = "io.cilium.k8s.policy.serviceaccount";
const NS_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
/// The keys of a rule that name its peers; a rule with none of them but
/// with ports admits every peer.
const PEER_KEYS: &[&str] = &[
    "fromEndpoints",
    "fromEntities",
    "fromCIDR",
    "fromCIDRSet",
    "fromNodes",
    "fromGroups",
    "toEndpoints",
    "toEntities",
    "toCIDR",
    "toCIDRSet",
    "toFQDNs",
    "toNodes",
    "toGroups",
    "toServices",
];

impl<'a> Model<'a> {
    /// An endpoint's labels as Cilium sees them: its pod labels, its
    /// namespace, its service account and its namespace's labels.
    fn cilium_labels(&self, e: &Endpoint) -> BTreeMap<String, String> {
        let mut l = e.labels.clone();
        if let Some(ns) = &e.namespace {
            l.insert(NS_LABEL.to_string(), ns.clone());
            for (k, v) in self.namespace_labels(ns) {
                l.insert(format!("{NS_LABELS_PREFIX}{k}"), v.clone());
            }
            if let Some(sa) = e.service_account() {
                l.insert(SA_LABEL.to_string(), sa.to_string());
            }
        }
        l
    }

    pub(super) fn cilium(&self, e: &Endpoint, peer: &Endpoint, port: u16, d: Direction) -> Step {
        let dir = if d == Direction::Ingress { "ingress" } else { "egress" };
        let Some(ns) = e.namespace.as_deref() else {
            return pass("Cilium", None, format!("{dir}: outside the cluster, no Cilium endpoint"));
        };
        let labels = self.cilium_labels(e);
        let selecting: Vec<&Value> = self
            .cilium
            .select(&[ns], true, &labels)
            .into_iter()
            .filter(|p| selector_matches(at(p, &["spec", "endpointSelector"]), &labels, None))
            .collect();
        let peer_labels = peer.namespace.as_ref().map(|_| self.cilium_labels(peer));
        // Named ports name the destination's container ports.
        let named = if d == Direction::Ingress { &e.named_ports } else { &peer.named_ports };
        let rules = Peer { endpoint: peer, labels: peer_labels.as_ref(), named };
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
                if rules.matches(p, rule, port, d, false) {
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
                if rules.matches(p, rule, port, d, resolvable) {
                    return pass(
                        "Cilium",
                        Some(name_of(p)),
                        format!("{dir}: a rule admits {} on port {port}", peer.describe()),
                    );
                }
                // Near misses name the culprit better than the default deny.
                if near_miss.is_none() {
                    if !resolvable && rules.matches(p, rule, port, d, true) {
                        near_miss = Some((
                            name_of(p),
                            format!(
                                "its toFQDNs rule matches {}, but no DNS rule of {} lets it look the name up",
                                peer.describe(),
                                e.describe()
                            ),
                        ));
                    } else if rules.matches(p, rule, 0, d, resolvable) {
                        near_miss =
                            Some((name_of(p), format!("a rule admits {} but not on port {port}", peer.describe())));
                    }
                }
            }
        }
        let empty = Vec::new();
        let netpols = self.netpol.get(ns).unwrap_or(&empty);
        for np in netpols.iter().filter(|p| super::label_selector_matches(at(p, &["spec", "podSelector"]), &e.labels)) {
            let types: Vec<&str> = list(at(np, &["spec", "policyTypes"])).iter().filter_map(Value::as_str).collect();
            let applies = match d {
                Direction::Ingress => types.is_empty() || types.contains(&"Ingress"),
                Direction::Egress => {
                    types.contains(&"Egress") || (types.is_empty() && !at(np, &["spec", "egress"]).is_null())
                }
            };
            if !applies {
                continue;
            }
            if default_deny.is_none() {
                default_deny = Some(name_of(np));
            }
            if list(at(np, &["spec", allow_key])).iter().any(|r| self.netpol_rule_matches(np, r, &rules, port, d)) {
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

    fn netpol_rule_matches(&self, p: &Value, rule: &Value, peer: &Peer<'_>, port: u16, d: Direction) -> bool {
        let key = if d == Direction::Ingress { "from" } else { "to" };
        let own = at(p, &["metadata", "namespace"]).as_str();
        let peers = list(at(rule, &[key]));
        // An empty or missing list matches every peer.
        let peer_ok = peers.is_empty()
            || peers.iter().any(|x| {
                if !at(x, &["ipBlock"]).is_null() {
                    return peer.endpoint.namespace.is_none()
                        && address_in(at(x, &["ipBlock"]), peer.endpoint.address, "except");
                }
                let Some(peer_ns) = peer.endpoint.namespace.as_deref() else { return false };
                let ns_sel = at(x, &["namespaceSelector"]);
                let ns_ok = if ns_sel.is_null() {
                    Some(peer_ns) == own
                } else {
                    let mut l = self.namespace_labels(peer_ns).clone();
                    l.insert("kubernetes.io/metadata.name".to_string(), peer_ns.to_string());
                    super::label_selector_matches(ns_sel, &l)
                };
                ns_ok && super::label_selector_matches(at(x, &["podSelector"]), &peer.endpoint.labels)
            });
        let ports = list(at(rule, &["ports"]));
        let port_ok = ports.is_empty()
            || ports.iter().any(|p| {
                let proto = at(p, &["protocol"]).as_str().unwrap_or("TCP");
                let number = port_number(at(p, &["port"]), peer.named);
                let end = at(p, &["endPort"]).as_u64().and_then(|n| u16::try_from(n).ok());
                proto == "TCP"
                    && match (number, end) {
                        _ if at(p, &["port"]).is_null() => true,
                        (Some(n), Some(e)) => (n..=e).contains(&port),
                        (Some(n), None) => n == port,
                        (None, _) => false,
                    }
            });
        peer_ok && port_ok
    }
}

/// The peer a rule is asked about, with its Cilium labels (pods only) and
/// the named ports of the connection's destination.
struct Peer<'p> {
    endpoint: &'p Endpoint,
    labels: Option<&'p BTreeMap<String, String>>,
    named: &'p BTreeMap<String, u16>,
}

impl Peer<'_> {
    /// Whether `rule` of policy `p` admits this peer on `port` (0: any port).
    fn matches(&self, p: &Value, rule: &Value, port: u16, d: Direction, resolvable: bool) -> bool {
        let confine = at(p, &["metadata", "namespace"]).as_str();
        let (endpoints_key, entities_key, cidr_key, cidrset_key) = match d {
            Direction::Ingress => ("fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet"),
            Direction::Egress => ("toEndpoints", "toEntities", "toCIDR", "toCIDRSet"),
        };
        let peer = self.endpoint;
        let any_peer = !PEER_KEYS.iter().any(|k| !at(rule, &[k]).is_null()) && !at(rule, &["toPorts"]).is_null();
        let entity = |names: &[&str]| {
            list(at(rule, &[entities_key])).iter().filter_map(Value::as_str).any(|e| names.contains(&e))
        };
        let peer_ok = any_peer
            || match self.labels {
                Some(labels) => {
                    list(at(rule, &[endpoints_key])).iter().any(|s| selector_matches(s, labels, confine))
                        || entity(&["cluster", "all"])
                }
                None => {
                    let fqdn = resolvable
                        && peer
                            .dns_name
                            .as_deref()
                            .is_some_and(|n| list(at(rule, &["toFQDNs"])).iter().any(|f| dns_rule_matches(f, n)));
                    let unknown_address = peer.address.is_none() && peer.dns_name.is_none();
                    let family = match peer.address.map(|a| a.addr) {
                        Some(std::net::IpAddr::V6(_)) => "world-ipv6",
                        _ => "world-ipv4",
                    };
                    // A selector of expressions only (`NotIn` on the namespace,
                    // `DoesNotExist`) also matches identities without those
                    // labels — the world's too; an empty one never does.
                    let by_expression = list(at(rule, &[endpoints_key])).iter().any(|s| {
                        at(s, &["matchLabels"]).as_object().is_none_or(|m| m.is_empty())
                            && !list(at(s, &["matchExpressions"])).is_empty()
                            && selector_matches(s, &BTreeMap::new(), confine)
                    });
                    entity(&["world", "all", family])
                        || by_expression
                        || list(at(rule, &[cidr_key])).iter().any(|c| {
                            cidr_of(c).is_some_and(|c| {
                                peer.address.is_some_and(|a| c.contains(&a)) || (unknown_address && c.prefix == 0)
                            })
                        })
                        || list(at(rule, &[cidrset_key])).iter().any(|c| {
                            address_in(c, peer.address, "except")
                                || (unknown_address && cidr_of(at(c, &["cidr"])).is_some_and(|c| c.prefix == 0))
                        })
                        || fqdn
                }
            };
        peer_ok && self.ports_match(at(rule, &["toPorts"]), port)
    }

    /// Whether a rule's `toPorts` admit `port`; port 0 asks about any port
    /// (an `expect` toward an external destination without one). An entry
    /// with `serverNames` admits only a TLS connection to one of them.
    fn ports_match(&self, to_ports: &Value, port: u16) -> bool {
        if to_ports.is_null() {
            return true;
        }
        list(to_ports).iter().any(|tp| {
            let names = list(at(tp, &["serverNames"]));
            let sni_ok = names.is_empty()
                || self.endpoint.dns_name.as_deref().is_some_and(|n| {
                    names
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|s| s.eq_ignore_ascii_case(n) || fqdn_pattern_matches(s, n) && s.contains('*'))
                });
            let ports = list(at(tp, &["ports"]));
            let port_ok = port == 0
                || ports.iter().any(|p| {
                    let number = port_number(at(p, &["port"]), self.named);
                    let end = at(p, &["endPort"]).as_u64().and_then(|n| u16::try_from(n).ok());
                    let proto = at(p, &["protocol"]).as_str().unwrap_or("ANY");
                    let proto_ok = matches!(proto, "TCP" | "ANY");
                    match (number, end) {
                        (Some(0), _) => proto_ok,
                        (Some(n), Some(e)) => proto_ok && (n..=e).contains(&port),
                        (Some(n), None) => proto_ok && n == port,
                        (None, _) => false,
                    }
                });
            sni_ok && port_ok
        })
    }
}

/// A port given as a number, a numeric string, or a named port of `named`.
fn port_number(v: &Value, named: &BTreeMap<String, u16>) -> Option<u16> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .or_else(|| v.as_str().and_then(|s| s.parse::<u16>().ok()))
        .or_else(|| v.as_str().and_then(|s| named.get(s).copied()))
}

/// A Cilium endpoint selector against Cilium labels; in a namespaced
/// policy (`confine`), peers are confined to its namespace unless the
/// selector names one (or a namespace label).
fn selector_matches(sel: &Value, labels: &BTreeMap<String, String>, confine: Option<&str>) -> bool {
    let names_namespace = |k: &str| k == NS_LABEL || k.starts_with(NS_LABELS_PREFIX);
    let mut named = false;
    let ok_labels = at(sel, &["matchLabels"]).as_object().is_none_or(|m| {
        m.iter().all(|(k, v)| {
            let k = strip_source(k);
            named |= names_namespace(k);
            labels.get(k).map(String::as_str) == v.as_str()
        })
    });
    let ok_exprs = list(at(sel, &["matchExpressions"])).iter().all(|e| {
        named |= names_namespace(strip_source(at(e, &["key"]).as_str().unwrap_or("")));
        super::expression_matches(e, labels, strip_source)
    });
    let confined = match confine {
        Some(ns) if !named => labels.get(NS_LABEL).map(String::as_str) == Some(ns),
        _ => true,
    };
    ok_labels && ok_exprs && confined
}

/// Whether `address` is inside `set.cidr` and outside its excepts.
fn address_in(set: &Value, address: Option<Cidr>, except_key: &str) -> bool {
    let Some(a) = address else { return false };
    let inside = cidr_of(at(set, &["cidr"])).is_some_and(|c| c.contains(&a));
    inside && !list(at(set, &[except_key])).iter().filter_map(cidr_of).any(|e| e.contains(&a))
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
