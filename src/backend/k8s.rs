//! The labels ztp sets on objects it does not own: ambient enrollment on
//! Namespaces, and the waypoint binding on Services.
//!
//! Both are applied as partial objects that carry only these labels, so ztp
//! owns those fields and nothing else; it never creates or deletes the
//! objects. The binding is on each fronted Service, not the Namespace: only
//! the Services with L7 rules pay the waypoint hop, and a Service label
//! beats any namespace-wide one (docs/layers.md).

use super::{Meta, labels_only};
use crate::ir::Ir;
use crate::manifest::{Layer, Manifest};
use std::collections::BTreeMap;

/// Layer 0: every namespace ztp manages joins the ambient mesh.
pub fn namespaces(ir: &Ir) -> Vec<Manifest> {
    ir.namespaces
        .iter()
        .map(|n| {
            labels_only(
                Meta {
                    layer: Layer::Namespaces,
                    step: 0,
                    api_version: "v1",
                    kind: "Namespace",
                    namespace: None,
                    name: n.name.clone(),
                    origin: &n.origin,
                },
                BTreeMap::from([("istio.io/dataplane-mode".to_string(), "ambient".to_string())]),
            )
        })
        .collect()
}

/// Layer 4, after the waypoint and its policy: bind each fronted Service.
pub fn waypoint_bindings(ir: &Ir) -> Vec<Manifest> {
    let mut out: Vec<Manifest> = Vec::new();
    for w in &ir.workloads {
        let Some(wp) = w.waypoint.and_then(|i| ir.waypoint(i)) else { continue };
        let mut labels = BTreeMap::from([("istio.io/use-waypoint".to_string(), wp.name.clone())]);
        if w.ingress_use_waypoint {
            labels.insert("istio.io/ingress-use-waypoint".into(), "true".into());
        }
        if out.iter().any(|m| m.namespace.as_deref() == Some(w.namespace.as_str()) && m.name == w.service) {
            continue;
        }
        out.push(labels_only(
            Meta {
                layer: Layer::L7,
                step: 2,
                api_version: "v1",
                kind: "Service",
                namespace: Some(&w.namespace),
                name: w.service.clone(),
                origin: &w.origin,
            },
            labels,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ir_of;
    use crate::manifest::Ownership;

    #[test]
    fn namespaces_are_labelled_not_owned() {
        let ms = namespaces(&ir_of("namespace b {}\nnamespace a {}"));
        assert_eq!(ms.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(ms.iter().all(|m| m.ownership == Ownership::LabelsOnly && m.body.fields().is_empty()));
        assert_eq!(ms[0].labels, BTreeMap::from([("istio.io/dataplane-mode".to_string(), "ambient".to_string())]));
    }

    #[test]
    fn only_waypoint_fronted_services_are_bound() {
        let ir = ir_of(
            r#"namespace a {
  gateway gw { listener http { port = 80 } }
  workload web {}
  workload api { port http { number = 80, protocol = http } }
  workload db { port pg { number = 5432 } }
  allow web -> api:http { http { methods = [GET] } }
  allow web -> db:pg
}"#,
        );
        let ms = waypoint_bindings(&ir);
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].name, "api");
        assert!(!ms[0].labels.contains_key("istio.io/ingress-use-waypoint"), "no gateway flow to api");
    }

    #[test]
    fn gateway_traffic_is_sent_through_the_waypoint() {
        let ir = ir_of(
            r#"namespace a {
  gateway gw { listener http { port = 80 } route "/" -> api:http }
  workload api { port http { number = 80, protocol = http } }
  allow gw -> api:http { http { methods = [GET] } }
}"#,
        );
        let ms = waypoint_bindings(&ir);
        assert_eq!(ms[0].labels.get("istio.io/ingress-use-waypoint").map(String::as_str), Some("true"));
        assert_eq!(ms[0].labels.get("istio.io/use-waypoint").map(String::as_str), Some("waypoint"));
    }
}
