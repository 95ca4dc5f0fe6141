//! Outage-free order: every apply's request log is replayed write by
//! write through the reachability model (`ztp::verify`), and no flow that
//! is allowed before and after an apply may be denied in between.
//!
//! The flows are the program's own (every workload and gateway flow, for
//! every declared port, with the first method and path of its L7 block)
//! plus traffic the cluster already has outside the program. Gateway
//! readiness and waypoint binding come from the fake's controller events in
//! the same log, so binding before the waypoint is ready, or narrowing
//! before the binding holds, shows up as a denied flow.

use crate::fakeapi::{FakeKube, Logged, is_mutating};
use crate::support::{built_objects, edit, scratch_example, seed_services};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use ztp::ir::{Dest, Ir, Peer};
use ztp::verify::intent::flows;
use ztp::verify::{Endpoint, Flow, Model};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn ir_of(path: &Path) -> Ir {
    let built = ztp::driver::build(&ztp::resolve::load::RealFs, path, None).unwrap();
    built.checked.ir.unwrap()
}

/// A named flow to check.
pub(crate) struct Case {
    pub name: String,
    pub flow: Flow,
}

/// Every in-cluster flow of the program, per destination port (external
/// destinations are egress, which no apply order can break: they are
/// Cilium's alone and the default deny comes last).
pub(crate) fn program_flows(ir: &Ir) -> Vec<Case> {
    ir.flows
        .iter()
        .filter(|f| matches!(f.dst, Dest::Workload { .. } | Dest::Gateway { .. }) && !matches!(f.src, Peer::Cidr(_)))
        .flat_map(|f| {
            flows(ir, &f.src, &f.dst, f.http.as_ref())
                .into_iter()
                .map(|(name, flow)| Case { name: format!("{} ({name})", f.origin.0), flow })
        })
        .collect()
}

/// Traffic the cluster has that the program does not describe: between
/// system pods, which ztp never selects.
fn other_traffic() -> Vec<Case> {
    let pod =
        |app: &str| Endpoint::pod("kube-system", BTreeMap::from([("k8s-app".to_string(), app.to_string())]), None);
    vec![Case {
        name: "kube-system/metrics-server -> kube-system/kube-dns:53".into(),
        flow: Flow {
            src: pod("metrics-server"),
            dst: pod("kube-dns"),
            service: Some("kube-dns".into()),
            port: 53,
            method: None,
            path: None,
            headers: BTreeMap::new(),
        },
    }]
}

pub(crate) type Key = (String, String, String, String);

pub(crate) fn key(o: &Value) -> Key {
    let s = |p: &[&str]| p.iter().try_fold(o, |v, k| v.get(*k)).and_then(Value::as_str).unwrap_or("").to_string();
    (s(&["apiVersion"]), s(&["kind"]), s(&["metadata", "namespace"]), s(&["metadata", "name"]))
}

/// The verdicts of every case over `objects`.
pub(crate) fn judge(objects: &BTreeMap<Key, Value>, cases: &[Case], root_ns: &str) -> Vec<ztp::verify::Verdict> {
    let model = Model::new(objects.values(), root_ns);
    cases.iter().map(|c| model.check(&c.flow)).collect()
}

/// Replays `log` over `initial`, checking after every write that no case
/// allowed at both ends is denied.
fn replay(initial: Vec<Value>, log: &[Logged], cases: &[Case], root_ns: &str, what: &str) {
    let mut state: BTreeMap<Key, Value> = initial.into_iter().map(|o| (key(&o), o)).collect();
    let mut states = vec![(String::from("before"), state.clone())];
    for l in log {
        let controller = l.method == "CONTROLLER";
        if !(controller || is_mutating(l) && (200..300).contains(&l.status)) {
            continue;
        }
        let Ok(obj) = serde_json::from_str::<Value>(&l.response) else { continue };
        if obj["kind"] == "Status" {
            continue;
        }
        if l.method == "DELETE" {
            state.remove(&key(&obj));
        } else {
            state.insert(key(&obj), obj);
        }
        states.push((format!("{} {}", l.method, l.path), state.clone()));
    }
    let first = judge(&states[0].1, cases, root_ns);
    let last = judge(&states[states.len() - 1].1, cases, root_ns);
    for (step, s) in &states {
        let now = judge(s, cases, root_ns);
        for (i, c) in cases.iter().enumerate() {
            if first[i].allowed() && last[i].allowed() {
                assert!(now[i].allowed(), "{what}: {} is denied after {step}: {:?}", c.name, now[i]);
            }
        }
    }
}

/// A cluster that already runs the example's Services (and kube-dns).
fn cluster_for(objects: &[Value]) -> FakeKube {
    let fake = FakeKube::start();
    seed_services(&fake, objects);
    fake
}

fn apply(fake: &FakeKube, path: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_ztp"))
        .args(["apply", "--auto-approve", "--context", "fake", "--kubeconfig"])
        .arg(fake.kubeconfig())
        .arg(path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Applies `path` and replays that apply against the union of the flows of
/// `programs` (the versions before and after).
fn apply_and_replay(fake: &FakeKube, path: &Path, programs: &[&Path], what: &str) {
    let before = fake.objects();
    fake.clear_log();
    apply(fake, path);
    let ir = ir_of(path);
    let mut cases = other_traffic();
    for p in programs {
        cases.extend(program_flows(&ir_of(p)));
    }
    replay(before, &fake.requests(), &cases, &ir.mesh.root_namespace, what);
    // The program's own flows hold at the end (model and backends agree).
    let end: BTreeMap<Key, Value> = fake.objects().into_iter().map(|o| (key(&o), o)).collect();
    let own = program_flows(&ir);
    for (c, v) in own.iter().zip(judge(&end, &own, &ir.mesh.root_namespace)) {
        assert!(v.allowed(), "{what}: {} is denied once applied: {v:?}", c.name);
    }
}

#[test]
fn the_first_apply_of_every_example_never_denies_a_flow_that_works() {
    for example in ["hello-db", "shop", "egress"] {
        let path = root().join("examples").join(example);
        let fake = cluster_for(&built_objects(&path));
        apply_and_replay(&fake, &path, &[&path], &format!("first apply of {example}"));
    }
}

#[test]
fn adding_and_removing_l7_on_a_flow_keeps_it_working() {
    let full = root().join("examples/hello-db");
    let l4 = scratch_example("hello-db", "l4");
    edit(
        &l4,
        "allow hello-gateway -> hello-app:http {\n    http { methods = [GET], paths = [\"/\", \"/health\", \"/github\"] }\n  }",
        "allow hello-gateway -> hello-app:http",
    );
    // Without L7 rules every method gets through: its expectation goes too.
    edit(
        &l4,
        "  expect deny hello-gateway -> hello-app:http { // only GET gets through the waypoint\n    http { methods = [POST], paths = [\"/github\"] }\n  }\n",
        "",
    );
    let fake = cluster_for(&built_objects(&full));
    apply_and_replay(&fake, &l4, &[&l4], "first apply without L7");
    assert!(fake.get("gateway.networking.k8s.io/v1", "Gateway", Some("demo"), "waypoint").is_none());
    apply_and_replay(&fake, &full, &[&l4, &full], "adding L7 (the waypoint appears)");
    assert!(fake.get("gateway.networking.k8s.io/v1", "Gateway", Some("demo"), "waypoint").is_some());
    apply_and_replay(&fake, &l4, &[&l4, &full], "removing L7 (the waypoint goes)");
    assert!(fake.get("gateway.networking.k8s.io/v1", "Gateway", Some("demo"), "waypoint").is_none());
}

#[test]
fn adding_and_removing_flows_keeps_the_others_working() {
    let full = root().join("examples/hello-db");
    let fewer = scratch_example("hello-db", "fewer");
    edit(&fewer, "  allow hello-app -> postgres:pg // L4: ztunnel + Cilium\n", "");
    edit(&fewer, "  allow monitoring/prometheus -> hello-app:metrics\n", "");
    edit(&fewer, "  expect allow hello-app -> postgres:pg\n", "");
    edit(&fewer, "  expect allow monitoring/prometheus -> hello-app:metrics\n", "");
    let fake = cluster_for(&built_objects(&full));
    apply_and_replay(&fake, &fewer, &[&fewer], "first apply with fewer flows");
    apply_and_replay(&fake, &full, &[&fewer, &full], "adding flows");
    apply_and_replay(&fake, &fewer, &[&fewer, &full], "removing flows");
}
