//! The reachability model against the intent, and against manifests broken
//! in the ways DOMAIN.md warns of.
//!
//! Matrix: for every example, every ordered pair of workloads (and every
//! gateway as a source) and every declared port, the model's verdict over
//! the built objects equals what the program's flows allow. Broken
//! manifests: each classic mistake, made by hand in hello-db's output,
//! flips exactly the flows it should, and the verdict names the culprit.

use serde_json::{Value, json};
use std::path::Path;
use ztp::ir::{Dest, Ir, Peer};
use ztp::verify::intent::flows;
use ztp::verify::{Model, Verdict};

fn built(example: &str) -> (Ir, Vec<Value>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(example);
    let b = ztp::driver::build(&ztp::resolve::load::RealFs, &path, None).unwrap();
    let objects = b.manifests.unwrap().iter().map(ztp::manifest::Manifest::to_value).collect();
    (b.checked.ir.unwrap(), objects)
}

/// Whether the program's flows allow `src` to reach workload `dst` on `port`.
fn intended(ir: &Ir, src: &Peer, dst: usize, port: u16) -> bool {
    let ns_of = |p: &Peer| match p {
        Peer::Workload(w) => ir.workload(*w).map(|w| w.namespace.clone()),
        Peer::Gateway(g) => ir.gateway(*g).map(|g| g.namespace.clone()),
        _ => None,
    };
    ir.flows.iter().any(|f| {
        let from = match (&f.src, src) {
            (a, b) if a == b => true,
            (Peer::Namespace { name, except }, Peer::Workload(w)) => {
                ns_of(src).as_deref() == Some(name) && !except.contains(w)
            }
            _ => false,
        };
        let to = matches!(&f.dst, Dest::Workload { workload, ports } if *workload == dst && ports.iter().any(|p| p.number == port));
        from && to
    })
}

#[test]
fn every_pair_and_port_gets_the_verdict_the_intent_gives() {
    for example in ["hello-db", "shop", "egress"] {
        let (ir, objects) = built(example);
        let model = Model::steady(&objects, &ir.mesh.root_namespace);
        let sources: Vec<Peer> =
            (0..ir.workloads.len()).map(Peer::Workload).chain((0..ir.gateways.len()).map(Peer::Gateway)).collect();
        let mut checked = 0;
        for src in &sources {
            for (d, w) in ir.workloads.iter().enumerate() {
                if *src == Peer::Workload(d) {
                    continue;
                }
                for port in &w.ports {
                    let dest = Dest::Workload { workload: d, ports: vec![port.clone()] };
                    // L7 flows are asked with the request their rules allow.
                    let http = ir
                        .flows
                        .iter()
                        .find(|f| f.src == *src && matches!(&f.dst, Dest::Workload { workload, .. } if *workload == d))
                        .and_then(|f| f.http.as_ref());
                    let want = intended(&ir, src, d, port.number);
                    for (name, flow) in flows(&ir, src, &dest, http) {
                        let got = model.check(&flow);
                        assert_eq!(got.allowed(), want, "{example}: {name}: the intent says {want}, the model {got:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 0, "{example}: {checked} pairs");
    }
}

fn find<'a>(objects: &'a mut [Value], kind: &str, name: &str) -> &'a mut Value {
    objects.iter_mut().find(|o| o["kind"] == kind && o["metadata"]["name"] == name).unwrap()
}

/// A hello-db flow by its ends, judged over `objects`.
fn judge(ir: &Ir, objects: &[Value], src: &str, dst: &str, method: Option<(&str, &str)>) -> Verdict {
    let peer = ztp::verify::query::source(ir, src).unwrap();
    let dest = ztp::verify::query::destination(ir, dst).unwrap();
    let model = Model::steady(objects, &ir.mesh.root_namespace);
    let (_, mut flow) = flows(ir, &peer, &dest, None).into_iter().next().unwrap();
    if let Some((m, p)) = method {
        flow.method = Some(m.into());
        flow.path = Some(p.into());
    }
    model.check(&flow)
}

/// `(source, destination, request)` of a flow to ask about.
type Asked<'a> = (&'a str, &'a str, Option<(&'a str, &'a str)>);

fn denied_by(v: &Verdict, layer: &str, object: &str) -> bool {
    matches!(v, Verdict::Denied { layer: l, object: o, .. } if *l == layer && o == object)
}

#[test]
fn broken_manifests_flip_the_right_verdicts_and_name_the_culprit() {
    let (ir, good) = built("hello-db");
    let gw = ("hello-gateway", "hello-app:http", Some(("GET", "/")));
    let flows: [Asked; 4] = [
        gw,
        ("hello-app", "postgres:pg", None),
        ("hello-app", "\"api.github.com\":443", None),
        ("monitoring/prometheus", "hello-app:metrics", None),
    ];
    for (s, d, m) in flows {
        assert!(judge(&ir, &good, s, d, m).allowed(), "{s} -> {d} works as built");
    }

    // 1. The DNS rules dropped (the workload's own and the baseline's): the
    //    FQDN rule never learns an address.
    let mut broken = good.clone();
    broken.retain(|o| o["metadata"]["name"] != "ztp-hello-db-allow-dns");
    let cnp = find(&mut broken, "CiliumNetworkPolicy", "ztp-wl-hello-app");
    let egress = cnp["spec"]["egress"].as_array_mut().unwrap();
    egress.retain(|r| r["toPorts"][0]["rules"]["dns"].is_null());
    let v = judge(&ir, &broken, "hello-app", "\"api.github.com\":443", None);
    assert!(denied_by(&v, "Cilium", "CiliumNetworkPolicy demo/ztp-wl-hello-app"), "{v:?}");
    assert!(judge(&ir, &broken, "hello-app", "postgres:pg", None).allowed());

    // 2. An L7 rule in a selector (ztunnel) policy: ztunnel never matches it.
    let mut broken = good.clone();
    let ap = find(&mut broken, "AuthorizationPolicy", "ztp-l4-hello-app");
    ap["spec"]["rules"][0]["to"][0]["operation"]["methods"] = json!(["GET"]);
    let v = judge(&ir, &broken, gw.0, gw.1, gw.2);
    assert!(denied_by(&v, "ztunnel", "AuthorizationPolicy demo/ztp-l4-hello-app"), "{v:?}");
    assert!(judge(&ir, &broken, "monitoring/prometheus", "hello-app:metrics", None).allowed());

    // 3. The waypoint's identity missing from the L4 policy.
    let mut broken = good.clone();
    let ap = find(&mut broken, "AuthorizationPolicy", "ztp-l4-hello-app");
    ap["spec"]["rules"].as_array_mut().unwrap().retain(|r| !r.to_string().contains("sa/waypoint"));
    let v = judge(&ir, &broken, gw.0, gw.1, gw.2);
    assert!(denied_by(&v, "ztunnel", "AuthorizationPolicy demo/ztp-l4-hello-app"), "{v:?}");
    assert!(judge(&ir, &broken, "hello-app", "postgres:pg", None).allowed());

    // 4. 15008 forgotten: Cilium sees the HBONE port, not the target port.
    let mut broken = good.clone();
    let cnp = find(&mut broken, "CiliumNetworkPolicy", "ztp-wl-postgres");
    cnp["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["port"] = json!("5432");
    let v = judge(&ir, &broken, "hello-app", "postgres:pg", None);
    assert!(denied_by(&v, "Cilium", "CiliumNetworkPolicy demo/ztp-wl-postgres"), "{v:?}");
    assert!(judge(&ir, &broken, gw.0, gw.1, gw.2).allowed());

    // 5. The metadata block without `enableDefaultDeny: false`: a deny-only
    //    policy puts every pod into default deny for egress. Visible before
    //    ztp's own default deny is in place.
    let mut before_deny = good.clone();
    before_deny.retain(|o| !o["metadata"]["name"].as_str().unwrap_or("").contains("default-deny"));
    let outside = |objects: &[Value]| judge(&ir, objects, "namespace(demo)", "1.1.1.1/32:443", None);
    assert!(outside(&before_deny).allowed());
    let mut broken = before_deny.clone();
    let meta = find(&mut broken, "CiliumClusterwideNetworkPolicy", "ztp-hello-db-deny-egress");
    meta["spec"].as_object_mut().unwrap().remove("enableDefaultDeny");
    let v = outside(&broken);
    assert!(denied_by(&v, "Cilium", "CiliumClusterwideNetworkPolicy ztp-hello-db-deny-egress"), "{v:?}");
}

#[test]
fn explain_reads_only_the_objects_that_bear_on_the_flow_and_agrees_with_the_whole_set() {
    for example in ["hello-db", "shop", "egress"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(example);
        let b = ztp::driver::build(&ztp::resolve::load::RealFs, &path, None).unwrap();
        let (ir, manifests) = (b.checked.ir.unwrap(), b.manifests.unwrap());
        let objects: Vec<Value> = manifests.iter().map(ztp::manifest::Manifest::to_value).collect();
        let whole = Model::steady(&objects, &ir.mesh.root_namespace);
        let sources: Vec<Peer> = (0..ir.workloads.len())
            .map(Peer::Workload)
            .chain((0..ir.gateways.len()).map(Peer::Gateway))
            .chain([Peer::World])
            .collect();
        let mut dests: Vec<(Dest, Option<&ztp::ir::Http>)> =
            ir.flows.iter().map(|f| (f.dst.clone(), f.http.as_ref())).collect();
        dests.extend(
            (0..ir.workloads.len())
                .map(|w| (Dest::Workload { workload: w, ports: ir.workloads[w].ports.clone() }, None)),
        );
        let mut compared = 0;
        for src in &sources {
            for (dst, http) in &dests {
                for e in ztp::verify::report::explain_over(&ir, &manifests, src, dst, *http) {
                    let (verdict, steps) = whole.explain(&e.flow);
                    assert_eq!(e.verdict, verdict, "{example}: {}", e.name);
                    let got: Vec<_> = e.steps.into_iter().map(|(s, _)| s).collect();
                    assert_eq!(got, steps, "{example}: {}", e.name);
                    compared += 1;
                }
            }
        }
        assert!(compared > 20, "{example}: {compared}");
    }
}
