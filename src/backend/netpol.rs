//! Kubernetes NetworkPolicy: a default deny (Ingress and Egress) in every
//! namespace ztp manages, beside Cilium's, so the namespaces stay closed if
//! the Cilium baseline is ever removed. Cilium unions NetworkPolicy allows
//! with its own, so this adds no allow and removes none.

use super::{Meta, owned, spec};
use crate::ir::Ir;
use crate::manifest::{Layer, Manifest};
use serde_json::json;
use std::collections::BTreeMap;

pub fn default_deny(ir: &Ir) -> Vec<Manifest> {
    let Some(origin) = &ir.cluster.default_deny else { return Vec::new() };
    ir.namespaces
        .iter()
        .map(|n| {
            owned(
                ir,
                Meta {
                    layer: Layer::DefaultDeny,
                    step: 0,
                    api_version: "networking.k8s.io/v1",
                    kind: "NetworkPolicy",
                    namespace: Some(&n.name),
                    name: "ztp-default-deny".into(),
                    origin,
                },
                BTreeMap::new(),
                spec(json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{find, ir_of};

    #[test]
    fn one_default_deny_per_namespace_only_with_default_deny() {
        assert!(default_deny(&ir_of("namespace a {}")).is_empty());
        let ir = ir_of("import \"std/baseline\"\nnamespace a {}\nnamespace b {}");
        let ms = default_deny(&ir);
        assert_eq!(ms.len(), 2);
        let np = find(&ms, "NetworkPolicy", "ztp-default-deny");
        assert_eq!(np["spec"], json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}));
    }
}
