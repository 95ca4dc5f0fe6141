//! `ztp plan`, `apply`, `destroy`, `doctor` and `force-unlock` end to end:
//! the binary against the in-process fake API server, over real HTTP.
//!
//! Each test starts its own server, seeds what a cluster has before ztp
//! (Services, other teams' objects), runs the binary and checks both its
//! output and the server's state and request log.

use crate::fakeapi::{FakeKube, Fault, FaultAction, Logged, is_mutating};
use crate::outage;
use crate::support::{built_objects, edit, scratch_example, seed_services};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const PART_OF: &str = "applyset.kubernetes.io/part-of";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `ztp ARGS --kubeconfig … --context fake`.
fn ztp(fake: &FakeKube, args: &[&str], stdin: Option<&str>) -> Output {
    let kubeconfig = fake.kubeconfig();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ztp"));
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--context", "fake"])
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env("USER", "tester")
        .env("HOSTNAME", "ci-runner");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn show(o: &Output) -> String {
    format!("exit {}\n--- stdout\n{}\n--- stderr\n{}", code(o), out(o), err(o))
}

type Key = (String, String, String);

fn key(o: &Value) -> Key {
    (
        o["kind"].as_str().unwrap_or("").to_string(),
        o["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
        o["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

fn labels_only(o: &Value) -> bool {
    matches!(o["kind"].as_str(), Some("Namespace" | "Service"))
}

/// ztp's members in the fake, by key.
fn members(fake: &FakeKube) -> BTreeMap<Key, Value> {
    fake.objects().into_iter().filter(|o| o["metadata"]["labels"][PART_OF].is_string()).map(|o| (key(&o), o)).collect()
}

/// Whether `desired` is a subset of `live` (maps key-wise, lists element-wise).
fn subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, v)| l.get(k).is_some_and(|lv| subset(v, lv))),
        (Value::Array(d), Value::Array(l)) => d.len() == l.len() && d.iter().zip(l).all(|(a, b)| subset(a, b)),
        (d, l) => d == l,
    }
}

/// Asserts every built object is in the fake as built.
fn assert_applied(fake: &FakeKube, objects: &[Value]) {
    for o in objects {
        let (kind, ns, name) = key(o);
        let live = fake
            .get(o["apiVersion"].as_str().unwrap(), &kind, (!ns.is_empty()).then_some(ns.as_str()), &name)
            .unwrap_or_else(|| panic!("{kind} {ns}/{name} was not applied"));
        if labels_only(o) {
            let want = o["metadata"]["labels"].as_object().cloned().unwrap_or_default();
            for (k, v) in want {
                assert_eq!(live["metadata"]["labels"][&k], v, "{kind} {ns}/{name} label {k}");
            }
            assert!(live["metadata"]["labels"][PART_OF].is_null(), "{kind} {ns}/{name} must not be a member");
        } else {
            let mut want = o.clone();
            want["metadata"].as_object_mut().unwrap().remove("annotations");
            assert!(subset(&want["spec"], &live["spec"]), "{kind} {ns}/{name} differs:\n{live:#}");
            assert!(live["metadata"]["labels"][PART_OF].is_string(), "{kind} {ns}/{name} has no part-of");
        }
    }
}

/// Whether a GET of `path` is a LIST: a collection, cluster-wide
/// (`/apis/g/v/plural`) or in a namespace (`…/namespaces/ns/plural`).
fn is_list(path: &str) -> bool {
    let rest = match path.strip_prefix("/api/v1/") {
        Some(rest) => rest,
        None => path.strip_prefix("/apis/").and_then(|p| p.splitn(3, '/').nth(2)).unwrap_or(""),
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    segments.len() == 1 || (segments.len() == 3 && segments.first() == Some(&"namespaces"))
}

fn dry_runs(log: &[Logged]) -> usize {
    log.iter().filter(|l| l.is_dry_run()).count()
}

fn writes(log: &[Logged]) -> Vec<&Logged> {
    log.iter().filter(|l| is_mutating(l)).collect()
}

fn plan_json(fake: &FakeKube, path: &Path) -> Value {
    let o = ztp(fake, &["plan", "--json", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    serde_json::from_str(&out(&o)).unwrap()
}

fn actions(plan: &Value) -> BTreeMap<Key, String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "unchanged")
        .map(|c| {
            (
                (
                    c["kind"].as_str().unwrap().to_string(),
                    c["namespace"].as_str().unwrap_or("").to_string(),
                    c["name"].as_str().unwrap().to_string(),
                ),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Starts a fake with the example's Services and applies the example.
fn applied(example: &Path) -> (FakeKube, Vec<Value>) {
    let fake = FakeKube::start();
    let objects = built_objects(example);
    seed_services(&fake, &objects);
    let o = ztp(&fake, &["apply", "--auto-approve", example.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    (fake, objects)
}

#[test]
fn first_apply_creates_everything_and_the_next_plan_is_quiet() {
    for example in ["hello-db", "shop", "egress"] {
        let path = root().join("examples").join(example);
        let fake = FakeKube::start();
        let objects = built_objects(&path);
        seed_services(&fake, &objects);
        let o = ztp(&fake, &["apply", "--auto-approve", path.to_str().unwrap()], None);
        assert_eq!(code(&o), 0, "{example}: {}", show(&o));
        let n = objects.len();
        assert!(
            err(&o).contains(&format!("Apply complete! {n} applied, 0 failed, 0 not attempted.")),
            "{example}: {}",
            show(&o)
        );
        assert_applied(&fake, &objects);
        // The parent records what it owns; the lock is gone.
        let secret = fake.get("v1", "Secret", Some("istio-system"), &format!("ztp-{example}")).expect("parent");
        assert_eq!(
            secret["metadata"]["annotations"]["applyset.kubernetes.io/tooling"],
            format!("ztp/v{}", env!("CARGO_PKG_VERSION"))
        );
        assert!(
            fake.get("coordination.k8s.io/v1", "Lease", Some("istio-system"), &format!("ztp-{example}-lock")).is_none()
        );

        fake.clear_log();
        let o = ztp(&fake, &["plan", "--detailed-exitcode", path.to_str().unwrap()], None);
        assert_eq!(code(&o), 0, "{example}: {}", show(&o));
        assert_eq!(out(&o), "No changes. The cluster matches the configuration.\n", "{example}");
        let log = fake.requests();
        assert_eq!(dry_runs(&log), 0, "{example}: a no-op plan dry-runs nothing");
        assert!(
            writes(&log).is_empty(),
            "{example}: a plan writes nothing: {:?}",
            writes(&log).iter().map(|l| &l.path).collect::<Vec<_>>()
        );
        // LISTs per group-kind × namespace, plus discovery and the parent.
        let lists = log.iter().filter(|l| l.method == "GET" && is_list(&l.path)).count();
        let kinds: BTreeSet<&str> =
            objects.iter().filter(|o| !labels_only(o)).map(|o| o["kind"].as_str().unwrap()).collect();
        let namespaces: BTreeSet<&str> = objects.iter().filter_map(|o| o["metadata"]["namespace"].as_str()).collect();
        assert!(lists <= kinds.len() * (namespaces.len() + 1), "{example}: {lists} LISTs");
        assert!(log.len() <= lists + 40, "{example}: {} requests", log.len());

        // A second apply changes nothing and says so.
        let o = ztp(&fake, &["apply", "--auto-approve", path.to_str().unwrap()], None);
        assert_eq!(code(&o), 0, "{}", show(&o));
        assert!(out(&o).starts_with("No changes."), "{}", show(&o));
    }
}

#[test]
fn a_change_to_the_program_shows_exactly_that_change() {
    let dir = scratch_example("hello-db", "change");
    let (fake, before) = applied(&dir);
    edit(&dir, "number = 5432", "number = 5433");
    let after = built_objects(&dir);
    let old: BTreeMap<Key, &Value> = before.iter().map(|o| (key(o), o)).collect();
    let changed: BTreeSet<Key> = after.iter().filter(|o| old.get(&key(o)) != Some(o)).map(key).collect();
    assert!(!changed.is_empty());
    fake.clear_log();
    let plan = plan_json(&fake, &dir);
    let acts = actions(&plan);
    assert_eq!(acts.keys().cloned().collect::<BTreeSet<_>>(), changed, "{plan:#}");
    assert!(acts.values().all(|a| a == "update"), "{acts:?}");
    assert_eq!(dry_runs(&fake.requests()), changed.len(), "one dry-run per changed object");

    let text = out(&ztp(&fake, &["plan", dir.to_str().unwrap()], None));
    assert!(text.contains("-           - port: \"5432\"") || text.contains("5432"), "{text}");
    assert!(text.contains(&format!("Plan: 0 to create, {} to update, 0 to delete.", changed.len())), "{text}");
    let o = ztp(&fake, &["plan", "--detailed-exitcode", dir.to_str().unwrap()], None);
    assert_eq!(code(&o), 2, "{}", show(&o));

    let o = ztp(&fake, &["apply", "--auto-approve", dir.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_applied(&fake, &after);
    let o = ztp(&fake, &["plan", "--detailed-exitcode", dir.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
}

/// hello-db without postgres: the workload, its one flow and the
/// expectations that name it.
fn drop_postgres(dir: &Path) {
    edit(
        dir,
        "  workload postgres {\n    selector { app = \"postgres\" }\n    port pg { number = 5432, protocol = tcp }\n  }\n",
        "",
    );
    edit(dir, "  allow hello-app -> postgres:pg // L4: ztunnel + Cilium\n", "");
    for expectation in [
        "expect deny namespace(demo) except hello-app -> postgres:pg",
        "expect deny monitoring/prometheus -> postgres:pg",
        "expect allow hello-app -> postgres:pg",
        "expect deny hello-gateway -> postgres:pg",
        "expect deny postgres -> hello-app:http",
    ] {
        edit(dir, &format!("  {expectation}\n"), "");
    }
}

#[test]
fn removing_a_flow_prunes_exactly_its_objects() {
    let dir = scratch_example("hello-db", "prune");
    let (fake, before) = applied(&dir);
    // postgres and its one flow go: its policies are pruned, hello-app's narrow.
    drop_postgres(&dir);
    let after = built_objects(&dir);
    let new: BTreeSet<Key> = after.iter().map(key).collect();
    let gone: BTreeSet<Key> = before.iter().map(key).filter(|k| !new.contains(k)).collect();
    assert!(gone.iter().any(|k| k.2.contains("postgres")), "{gone:?}");
    let plan = plan_json(&fake, &dir);
    let deleted: BTreeSet<Key> = actions(&plan).into_iter().filter(|(_, a)| a == "delete").map(|(k, _)| k).collect();
    assert_eq!(deleted, gone);

    fake.clear_log();
    let o = ztp(&fake, &["apply", "--auto-approve", dir.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let now: BTreeSet<Key> = members(&fake).into_keys().collect();
    let want: BTreeSet<Key> = after.iter().filter(|o| !labels_only(o)).map(key).collect();
    assert_eq!(now, want);
    // Deletes carry preconditions and come after every upsert.
    let log = fake.requests();
    let w = writes(&log);
    let first_delete = w.iter().position(|l| l.method == "DELETE" && !l.path.contains("leases")).unwrap();
    assert!(
        w[first_delete..]
            .iter()
            .all(|l| l.method == "DELETE" || l.path.contains("secrets") || l.path.contains("leases")),
        "{:?}",
        w.iter().map(|l| (&l.method, &l.path)).collect::<Vec<_>>()
    );
    for d in w.iter().filter(|l| l.method == "DELETE" && !l.path.contains("leases")) {
        assert!(d.body.contains("\"uid\""), "{}: {}", d.path, d.body);
        assert!(d.body.contains("\"resourceVersion\""), "{}: {}", d.path, d.body);
    }
}

#[test]
fn objects_that_are_not_ztps_are_refused_without_adopt() {
    let path = root().join("examples/hello-db");
    let objects = built_objects(&path);
    for owner in [None, Some("applyset-someone-else-v1")] {
        let fake = FakeKube::start();
        seed_services(&fake, &objects);
        let mut foreign = json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "ztp-wl-postgres", "namespace": "demo"},
            "spec": {"endpointSelector": {"matchLabels": {"app": "postgres"}}, "ingress": [{"fromEntities": ["cluster"]}]},
        });
        fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}));
        if let Some(o) = owner {
            foreign["metadata"]["labels"] = json!({PART_OF: o});
        }
        fake.put(foreign.clone());
        fake.clear_log();
        let o = ztp(&fake, &["apply", "--auto-approve", path.to_str().unwrap()], None);
        assert_eq!(code(&o), 1, "{}", show(&o));
        assert!(err(&o).contains("CiliumNetworkPolicy demo/ztp-wl-postgres"), "{}", show(&o));
        assert!(err(&o).contains("--adopt"), "{}", show(&o));
        let log = fake.requests();
        let touched: Vec<&Logged> = log.iter().filter(|l| is_mutating(l) && !l.path.contains("leases")).collect();
        assert!(touched.is_empty(), "nothing is written: {:?}", touched.iter().map(|l| &l.path).collect::<Vec<_>>());
        let live = fake.get("cilium.io/v2", "CiliumNetworkPolicy", Some("demo"), "ztp-wl-postgres").unwrap();
        assert_eq!(live["spec"], foreign["spec"]);

        // Adopting makes it a member; the fields its creator owns are
        // conflicts, taken only with --force-conflicts.
        let o = ztp(&fake, &["plan", "--adopt", path.to_str().unwrap()], None);
        assert_eq!(code(&o), 0, "{}", show(&o));
        assert!(
            out(&o).contains("~ CiliumNetworkPolicy demo/ztp-wl-postgres will be updated in place"),
            "{}",
            show(&o)
        );
        assert!(out(&o).contains("! conflict on .spec.ingress: conflict with \"test-setup\""), "{}", show(&o));
        let o = ztp(&fake, &["apply", "--auto-approve", "--adopt", path.to_str().unwrap()], None);
        assert_eq!(code(&o), 1, "{}", show(&o));
        let o = ztp(&fake, &["apply", "--auto-approve", "--adopt", "--force-conflicts", path.to_str().unwrap()], None);
        assert_eq!(code(&o), 0, "{}", show(&o));
        assert_applied(&fake, &objects);
        let o = ztp(&fake, &["plan", "--detailed-exitcode", path.to_str().unwrap()], None);
        assert_eq!(code(&o), 0, "{}", show(&o));
    }
}

#[test]
fn a_field_changed_by_another_manager_is_a_conflict() {
    let path = root().join("examples/hello-db");
    let (fake, objects) = applied(&path);
    let cnp = objects.iter().find(|o| key(o).2 == "ztp-wl-postgres").unwrap();
    let mut theirs = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "ztp-wl-postgres", "namespace": "demo"}, "spec": cnp["spec"].clone()});
    theirs["spec"]["endpointSelector"] = json!({"matchLabels": {"app": "postgres-v2"}});
    fake.apply_as("kubectl-edit", theirs, true).unwrap();

    let o = ztp(&fake, &["plan", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).contains("! conflict on .spec.endpointSelector"), "{}", show(&o));
    assert!(out(&o).contains("kubectl-edit"), "{}", show(&o));

    let o = ztp(&fake, &["apply", "--auto-approve", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(err(&o).contains("1 conflict with other field managers"), "{}", show(&o));
    let live = fake.get("cilium.io/v2", "CiliumNetworkPolicy", Some("demo"), "ztp-wl-postgres").unwrap();
    assert_eq!(live["spec"]["endpointSelector"]["matchLabels"]["app"], "postgres-v2", "nothing changed");

    let o = ztp(&fake, &["apply", "--auto-approve", "--force-conflicts", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_applied(&fake, &objects);
}

#[test]
fn a_saved_plan_applies_exactly_and_a_stale_one_is_refused() {
    let dir = scratch_example("hello-db", "saved");
    let (fake, _) = applied(&dir);
    edit(&dir, "number = 5432", "number = 5433");
    let file = dir.parent().unwrap().join("change.plan");
    let o = ztp(&fake, &["plan", "--out", file.to_str().unwrap(), dir.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));

    // Someone changes an object the plan updates: the plan is stale.
    let mut live = fake.get("cilium.io/v2", "CiliumNetworkPolicy", Some("demo"), "ztp-wl-postgres").unwrap();
    live["metadata"]["annotations"]["team.example.com/reviewed"] = json!("yes");
    fake.update_as("kubectl-annotate", live);
    let o = ztp(&fake, &["apply", file.to_str().unwrap()], None);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(
        err(&o).contains("Saved plan is stale: CiliumNetworkPolicy demo/ztp-wl-postgres was changed since"),
        "{}",
        show(&o)
    );

    // A fresh saved plan applies without a prompt (standard input is no terminal).
    let o = ztp(&fake, &["plan", "--out", file.to_str().unwrap(), dir.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let o = ztp(&fake, &["apply", file.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_applied(&fake, &built_objects(&dir));
}

#[test]
fn apply_without_a_terminal_or_auto_approve_changes_nothing() {
    let path = root().join("examples/hello-db");
    let fake = FakeKube::start();
    seed_services(&fake, &built_objects(&path));
    let o = ztp(&fake, &["apply", path.to_str().unwrap()], Some("yes\n"));
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(err(&o).contains("Pass --auto-approve"), "{}", show(&o));
    assert!(members(&fake).is_empty());
    assert!(
        fake.get("coordination.k8s.io/v1", "Lease", Some("istio-system"), "ztp-hello-db-lock").is_none(),
        "the lock is released"
    );
}

#[test]
fn destroy_removes_all_and_only_ztps_objects() {
    let path = root().join("examples/hello-db");
    let (fake, objects) = applied(&path);
    let theirs = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "team-policy", "namespace": "demo"},
        "spec": {"endpointSelector": {}, "ingress": [{"fromEntities": ["cluster"]}]}});
    fake.put(theirs);
    fake.clear_log();
    let o = ztp(&fake, &["destroy", "--auto-approve", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(members(&fake).is_empty(), "{:?}", members(&fake).keys().collect::<Vec<_>>());
    assert!(fake.get("cilium.io/v2", "CiliumNetworkPolicy", Some("demo"), "team-policy").is_some());
    assert!(fake.get("v1", "Secret", Some("istio-system"), "ztp-hello-db").is_none(), "the parent goes");
    assert!(fake.get("coordination.k8s.io/v1", "Lease", Some("istio-system"), "ztp-hello-db-lock").is_none());
    for o in objects.iter().filter(|o| labels_only(o)) {
        let (kind, ns, name) = key(o);
        let live = fake
            .get("v1", &kind, (!ns.is_empty()).then_some(ns.as_str()), &name)
            .unwrap_or_else(|| panic!("{kind} {ns}/{name} must stay"));
        for k in o["metadata"]["labels"].as_object().unwrap().keys() {
            assert!(live["metadata"]["labels"][k].is_null(), "{kind} {ns}/{name} keeps ztp's label {k}");
        }
    }
    // Default deny goes first.
    let log = fake.requests();
    let deletes: Vec<&Logged> = log.iter().filter(|l| l.method == "DELETE" && is_mutating(l)).collect();
    let deny = deletes.iter().position(|l| l.path.contains("default-deny")).unwrap();
    let allow = deletes.iter().position(|l| l.path.contains("ztp-wl-")).unwrap();
    assert!(deny < allow, "{:?}", deletes.iter().map(|l| &l.path).collect::<Vec<_>>());
    // Destroying again is a no-op.
    let o = ztp(&fake, &["destroy", "--auto-approve", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).starts_with("No changes."), "{}", show(&o));
}

fn foreign_lease(fake: &FakeKube, holder: &str, seconds: u64) {
    fake.put(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "ztp-hello-db-lock", "namespace": "istio-system",
            "annotations": {"ztp.dev/lock-operation": "apply", "ztp.dev/lock-version": "0.1.0", "ztp.dev/lock-created": "2026-12-06T10:00:00Z"}},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds, "renewTime": "2026-12-06T10:00:00.000000Z"}}));
}

#[test]
fn a_held_lock_fails_with_its_holder_or_is_waited_for() {
    let path = root().join("examples/hello-db");
    let fake = FakeKube::start();
    seed_services(&fake, &built_objects(&path));
    foreign_lease(&fake, "bob@laptop:4242:0d6f2c9e-1b1e-4c59-9a55-5b8f1d1a2b3c", 600);
    let o = ztp(&fake, &["apply", "--auto-approve", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 1, "{}", show(&o));
    let e = err(&o);
    assert!(e.contains("Lock Info:"), "{e}");
    assert!(e.contains("ID:        bob@laptop:4242:0d6f2c9e-1b1e-4c59-9a55-5b8f1d1a2b3c"), "{e}");
    assert!(e.contains("Who:       bob@laptop"), "{e}");
    assert!(e.contains("Operation: apply"), "{e}");
    assert!(members(&fake).is_empty(), "nothing written");

    let o = ztp(&fake, &["apply", "--auto-approve", "--lock-timeout", "2s", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(
        err(&o).contains("Waiting for the lock istio-system/ztp-hello-db-lock, held by bob@laptop"),
        "{}",
        show(&o)
    );
    assert!(err(&o).contains("(waited 2s)"), "{}", show(&o));
    // plan takes no lock.
    let o = ztp(&fake, &["plan", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
}

#[test]
fn a_killed_holders_lease_expires() {
    let path = root().join("examples/hello-db");
    let fake = FakeKube::start();
    seed_services(&fake, &built_objects(&path));
    foreign_lease(&fake, "ci@runner:77:6b1c7a52-28f4-4d7e-8b0b-3f6e2a9d4c11", 1);
    let o = ztp(&fake, &["apply", "--auto-approve", "--lock-timeout", "20s", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(err(&o).contains("Waiting for the lock"), "{}", show(&o));
    assert!(!members(&fake).is_empty());
    assert!(fake.get("coordination.k8s.io/v1", "Lease", Some("istio-system"), "ztp-hello-db-lock").is_none());
    // The takeover was a resourceVersion-guarded update, never a server-side apply.
    let lease_writes: Vec<Logged> =
        fake.requests().into_iter().filter(|l| l.path.contains("/leases") && l.is_write()).collect();
    assert!(lease_writes.iter().any(|l| l.method == "PUT" && l.body.contains("resourceVersion")), "{lease_writes:?}");
    assert!(lease_writes.iter().all(|l| l.method != "PATCH"), "{lease_writes:?}");
}

#[test]
fn two_concurrent_applies_never_write_at_once() {
    let path = root().join("examples/hello-db");
    let fake = FakeKube::builder().controller_delay(Duration::from_millis(800)).start();
    seed_services(&fake, &built_objects(&path));
    let results: Vec<Output> = std::thread::scope(|s| {
        let a = s.spawn(|| ztp(&fake, &["apply", "--auto-approve", path.to_str().unwrap()], None));
        let b = s.spawn(|| ztp(&fake, &["apply", "--auto-approve", path.to_str().unwrap()], None));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    let ok = results.iter().filter(|o| code(o) == 0).count();
    assert_eq!(ok, 1, "{}\n{}", show(&results[0]), show(&results[1]));
    let loser = results.iter().find(|o| code(o) != 0).unwrap();
    assert!(err(loser).contains("Lock Info:") && err(loser).contains("Who:       tester@ci-runner"), "{}", show(loser));
}

#[test]
fn force_unlock_needs_the_holders_id_and_a_yes() {
    let path = root().join("examples/hello-db");
    let fake = FakeKube::start();
    let id = "bob@laptop:4242:0d6f2c9e-1b1e-4c59-9a55-5b8f1d1a2b3c";
    foreign_lease(&fake, id, 600);
    let lease = || fake.get("coordination.k8s.io/v1", "Lease", Some("istio-system"), "ztp-hello-db-lock");
    let o = ztp(&fake, &["force-unlock", "not-the-holder", path.to_str().unwrap()], Some("yes\n"));
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(err(&o).contains(&format!("the lock is held by `{id}`")), "{}", show(&o));
    assert!(lease().is_some());
    let o = ztp(&fake, &["force-unlock", id, path.to_str().unwrap()], Some("no\n"));
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(lease().is_some());
    let o = ztp(&fake, &["force-unlock", id, "--stack", "hello-db"], Some("yes\n"));
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(err(&o).contains("The stack is unlocked."), "{}", show(&o));
    assert!(lease().is_none());
}

#[test]
fn preflight_names_what_is_missing() {
    let path = root().join("examples/hello-db");
    let fake = FakeKube::builder().without_group("cilium.io").start();
    let o = ztp(&fake, &["plan", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(err(&o).contains("CiliumNetworkPolicy (cilium.io/v2), installed by Cilium"), "{}", show(&o));

    // The Service the waypoint binds must exist: ztp never creates one.
    let fake = FakeKube::start();
    seed_services(&fake, &built_objects(&path));
    assert!(fake.delete("v1", "Service", Some("demo"), "hello-app"));
    let o = ztp(&fake, &["plan", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(err(&o).contains("Service demo/hello-app"), "{}", show(&o));
    assert!(fake.requests().iter().all(|l| !is_mutating(l)));
}

#[test]
fn a_waypoint_that_never_becomes_ready_stops_before_the_binding() {
    let path = root().join("examples/hello-db");
    let fake = FakeKube::builder().waypoint_never_ready().start();
    seed_services(&fake, &built_objects(&path));
    let o = ztp(&fake, &["apply", "--auto-approve", "--wait-timeout", "1", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(err(&o).contains("waypoint not ready after 1s"), "{}", show(&o));
    let svc = fake.get("v1", "Service", Some("demo"), "hello-app").unwrap();
    assert!(
        svc["metadata"]["labels"]["istio.io/use-waypoint"].is_null(),
        "never bound to a waypoint that is not ready"
    );
    assert!(fake.get("cilium.io/v2", "CiliumClusterwideNetworkPolicy", None, "ztp-hello-db-default-deny").is_none());
}

/// The state invariants no apply may break, at any point: a default deny
/// only with every allow in place; a Service bound only to a ready waypoint.
fn assert_safe(fake: &FakeKube, objects: &[Value], context: &str) {
    let deny_present = objects
        .iter()
        .filter(|o| o["metadata"]["name"].as_str().is_some_and(|n| n.contains("default-deny")))
        .any(|o| {
            let (kind, ns, name) = key(o);
            fake.get(o["apiVersion"].as_str().unwrap(), &kind, (!ns.is_empty()).then_some(ns.as_str()), &name).is_some()
        });
    if deny_present {
        let allows: Vec<Value> = objects
            .iter()
            .filter(|o| !o["metadata"]["name"].as_str().is_some_and(|n| n.contains("default-deny")))
            .cloned()
            .collect();
        assert_applied(fake, &allows);
    }
    for svc in fake.objects().iter().filter(|o| o["kind"] == "Service") {
        if let Some(wp) = svc["metadata"]["labels"]["istio.io/use-waypoint"].as_str() {
            let ns = svc["metadata"]["namespace"].as_str().unwrap();
            let gw = fake
                .get("gateway.networking.k8s.io/v1", "Gateway", Some(ns), wp)
                .unwrap_or_else(|| panic!("{context}: Service bound to a missing waypoint {wp}"));
            let programmed = gw["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Programmed" && c["status"] == "True"));
            assert!(programmed, "{context}: Service bound to waypoint {wp} that is not ready");
        }
    }
}

/// The objects an outcome lists under `Not attempted:`.
fn not_attempted(stderr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in stderr.lines() {
        if line == "Not attempted:" {
            inside = true;
        } else if inside && line.starts_with("  ") {
            out.insert(line.trim().to_string());
        } else {
            inside = false;
        }
    }
    out
}

#[test]
fn a_failure_at_any_write_leaves_a_safe_state_and_a_rerun_converges() {
    let path = root().join("examples/hello-db");
    let objects = built_objects(&path);
    // A clean run gives the writes in order.
    let clean = FakeKube::start();
    seed_services(&clean, &objects);
    clean.clear_log();
    let o = ztp(&clean, &["apply", "--auto-approve", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let log = clean.requests();
    let targets: Vec<(String, String, usize)> = log
        .iter()
        .enumerate()
        .filter(|(_, l)| is_mutating(l) && !l.path.contains("/leases"))
        .map(|(i, l)| {
            let nth = log[..=i].iter().filter(|m| m.method == l.method && m.path == l.path).count();
            (l.method.clone(), l.path.clone(), nth)
        })
        .collect();
    assert!(targets.len() >= objects.len(), "{} writes for {} objects", targets.len(), objects.len());
    let ir = outage::ir_of(&path);
    let cases = outage::program_flows(&ir);

    for (index, (method, target, nth)) in targets.iter().enumerate() {
        let context = format!("failure at write {index} ({method} {target})");
        let fake = FakeKube::start();
        seed_services(&fake, &objects);
        // Forbidden is not retried: the write fails for good.
        fake.fault(Fault::at(method, target, *nth, FaultAction::Status(403)));
        let o = ztp(&fake, &["apply", "--auto-approve", path.to_str().unwrap()], None);
        assert_eq!(code(&o), 1, "{context}: {}", show(&o));
        let e = err(&o);
        assert!(
            e.contains("Apply failed: ") && e.contains(" failed, ") && e.contains(" not attempted."),
            "{context}: {e}"
        );
        assert!(e.contains("error: "), "{context}: {e}");
        // What was not attempted is not in the cluster.
        for id in not_attempted(&e) {
            let (kind, rest) = id.split_once(' ').unwrap();
            let (ns, name) = rest.split_once('/').map_or((None, rest), |(n, m)| (Some(n), m));
            if matches!(kind, "Namespace" | "Service") {
                continue;
            }
            let o = objects.iter().find(|o| key(o).0 == kind && key(o).2 == name).unwrap();
            assert!(
                fake.get(o["apiVersion"].as_str().unwrap(), kind, ns, name).is_none(),
                "{context}: {id} was applied"
            );
        }
        assert_safe(&fake, &objects, &context);
        // And by the reachability model: every flow of the program still works.
        let state: BTreeMap<_, Value> = fake.objects().into_iter().map(|o| (outage::key(&o), o)).collect();
        for (c, v) in cases.iter().zip(outage::judge(&state, &cases, &ir.mesh.root_namespace)) {
            assert!(v.allowed(), "{context}: {} is denied: {v:?}", c.name);
        }

        let o = ztp(&fake, &["apply", "--auto-approve", path.to_str().unwrap()], None);
        assert_eq!(code(&o), 0, "{context}, rerun: {}", show(&o));
        assert_applied(&fake, &objects);
        let o = ztp(&fake, &["plan", "--detailed-exitcode", path.to_str().unwrap()], None);
        assert_eq!(code(&o), 0, "{context}, then plan: {}", show(&o));
    }
}

#[test]
fn transient_faults_are_retried() {
    let path = root().join("examples/hello-db");
    let fake = FakeKube::start();
    let objects = built_objects(&path);
    seed_services(&fake, &objects);
    fake.fault(Fault::new("PATCH", "ciliumnetworkpolicies/ztp-wl-postgres", 1, FaultAction::Status(503)));
    fake.fault(Fault::new("PATCH", "authorizationpolicies/ztp-l4-postgres", 1, FaultAction::Drop));
    fake.fault(Fault::new(
        "GET",
        "/apis/cilium.io/v2/namespaces/demo/ciliumnetworkpolicies",
        1,
        FaultAction::Status(429),
    ));
    fake.fault(Fault::new(
        "GET",
        "/namespaces/demo/gateways/waypoint",
        1,
        FaultAction::Delay(Duration::from_millis(300)),
    ));
    let o = ztp(&fake, &["apply", "--auto-approve", path.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_applied(&fake, &objects);
}

#[test]
fn doctor_reports_the_installation_preconditions() {
    let fake = FakeKube::start();
    let o = ztp(&fake, &["doctor"], None);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(out(&o).contains("FAIL  cilium-config"), "{}", show(&o));

    fake.put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cilium-config", "namespace": "kube-system"},
        "data": {"cni-exclusive": "false", "kube-proxy-replacement": "true", "bpf-lb-sock-hostns-only": "true",
                 "enable-policy": "default", "enable-host-legacy-routing": "true"}}));
    let ds = |ns: &str, name: &str, image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"spec": {"containers": [{"name": "cilium-agent", "image": image}]}}}})
    };
    fake.put(ds("kube-system", "cilium", "quay.io/cilium/cilium:v1.18.2@sha256:00"));
    fake.put(ds("istio-system", "ztunnel", "docker.io/istio/ztunnel:1.27.0"));
    fake.put(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod", "namespace": "istio-system"},
        "spec": {"selector": {"matchLabels": {"app": "istiod"}}, "template": {"spec": {"containers": [{"name": "discovery", "image": "istio/pilot:1.27.0",
            "env": [{"name": "PILOT_AUTO_ALLOW_WAYPOINT_POLICY", "value": "true"}]}]}}}}));
    let o = ztp(&fake, &["doctor"], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let text = out(&o).replace(&fake.url(), "http://fake");
    insta::assert_snapshot!("doctor_healthy", text);

    fake.put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cilium-config", "namespace": "kube-system"},
        "data": {"cni-exclusive": "true", "bpf-lb-sock": "true", "enable-bpf-masquerade": "true", "enable-policy": "always"}}));
    let o = ztp(&fake, &["doctor"], None);
    assert_eq!(code(&o), 1, "{}", show(&o));
    let text = out(&o).replace(&fake.url(), "http://fake");
    insta::assert_snapshot!("doctor_broken", text);
}

/// The library's lock, plan and apply, driven directly (the CLI's lease lasts a
/// minute; here it lasts a fraction of a second).
mod library {
    use super::*;
    use std::sync::atomic::Ordering;
    use ztp::cluster::applyset::Parent;
    use ztp::cluster::client::{Cluster, ConnectOptions};
    use ztp::cluster::lock::{Lock, LockOptions};
    use ztp::cluster::{apply, plan};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    async fn connect(fake: &FakeKube) -> (Cluster, plan::Kinds) {
        let mut o = ConnectOptions::new(Some(fake.kubeconfig()), Some("fake".into()));
        o.attempts = 1;
        let cluster = Cluster::connect(&o).await.unwrap();
        let kinds = plan::discover(&cluster).await.unwrap();
        (cluster, kinds)
    }

    /// The plan of the program at `path` (stack `hello-db`) against `fake`.
    async fn plan_of(fake: &FakeKube, path: &Path) -> (Cluster, plan::Kinds, plan::Plan) {
        let built = ztp::driver::build(&ztp::resolve::load::RealFs, path, None).unwrap();
        let manifests = built.manifests.unwrap();
        let (cluster, kinds) = connect(fake).await;
        let parent = Parent::new("hello-db", "istio-system");
        let desired = plan::Desired::of(&manifests, &parent.id);
        let inputs = plan::Inputs { stack: "hello-db", parent, adopt: false, destroy: false };
        let p = plan::compute(&cluster, &kinds, &desired, &inputs).await.unwrap();
        (cluster, kinds, p)
    }

    #[test]
    fn a_lock_is_renewed_and_lost_when_renewing_fails() {
        let fake = FakeKube::start();
        runtime().block_on(async {
            let (cluster, kinds) = connect(&fake).await;
            let lease = &kinds[&("coordination.k8s.io/v1".to_string(), "Lease".to_string())];
            let o = LockOptions { timeout: Duration::ZERO, duration: Duration::from_millis(900), poll: Duration::from_millis(50) };
            let lock = Lock::acquire(&cluster, lease, "istio-system", "s", "apply", &o, &|_| {}).await.unwrap();
            let renewed = || {
                fake.get("coordination.k8s.io/v1", "Lease", Some("istio-system"), "ztp-s-lock").unwrap()["spec"]["renewTime"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            let first = renewed();
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert_ne!(renewed(), first, "renewed every third of the duration");
            assert!(!lock.lost_flag().load(Ordering::SeqCst));
            // A second holder is refused meanwhile.
            let other = Lock::acquire(&cluster, lease, "istio-system", "s", "apply", &o, &|_| {}).await;
            assert!(other.is_err());

            fake.fault(Fault::new("PUT", "/leases/ztp-s-lock", 0, FaultAction::Status(500)));
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(lock.lost_flag().load(Ordering::SeqCst), "a lock that cannot be renewed is lost");
            lock.release().await.unwrap();
            assert!(fake.get("coordination.k8s.io/v1", "Lease", Some("istio-system"), "ztp-s-lock").is_none());
        });
    }

    #[test]
    fn apply_stops_before_the_next_wave_once_the_lock_is_lost() {
        let path = root().join("examples/hello-db");
        let fake = FakeKube::start();
        seed_services(&fake, &built_objects(&path));
        runtime().block_on(async {
            let (cluster, kinds, p) = plan_of(&fake, &path).await;
            let manifests = built_objects(&path);
            let o = apply::Options::default();
            o.lock_lost.store(true, Ordering::SeqCst);
            fake.clear_log();
            let outcome = apply::execute(&cluster, &kinds, &p, &o, false, &|_| {}).await;
            assert!(outcome.applied.is_empty(), "{:?}", outcome.applied);
            assert_eq!(outcome.not_attempted.len(), manifests.len());
            assert!(
                outcome.failed.iter().any(|(what, why)| what.contains("lock") && why.contains("lost")),
                "{:?}",
                outcome.failed
            );
            let members_written =
                fake.requests().iter().filter(|l| is_mutating(l) && !l.path.contains("/secrets/")).count();
            assert_eq!(members_written, 0);
        });
    }

    #[test]
    fn a_prune_survives_status_writes_but_not_content_changes() {
        let dir = scratch_example("hello-db", "prune-race");
        let (fake, _) = applied(&dir);
        edit(&dir, "  allow world -> hello-gateway:http\n", "");
        edit(
            &dir,
            "  gateway hello-gateway {\n    listener http { port = 80 }\n    route \"/\" -> hello-app:http\n  }\n",
            "",
        );
        edit(
            &dir,
            "  allow hello-gateway -> hello-app:http {\n    http { methods = [GET], paths = [\"/\", \"/health\", \"/github\"] }\n  }\n",
            "",
        );
        edit(&dir, "  expect allow hello-gateway -> hello-app:http\n", "");
        edit(
            &dir,
            "  expect allow hello-gateway -> hello-app:http {\n    http { methods = [GET], paths = [\"/\", \"/health\", \"/github\"] }\n  }\n",
            "",
        );
        edit(
            &dir,
            "  expect deny hello-gateway -> hello-app:http { // only GET gets through the waypoint\n    http { methods = [POST], paths = [\"/github\"] }\n  }\n",
            "",
        );
        edit(&dir, "  expect allow world -> hello-gateway:http\n", "");
        edit(&dir, "  expect deny hello-gateway -> postgres:pg\n", "");
        edit(&dir, "  expect deny postgres -> hello-app:http\n", "");
        runtime().block_on(async {
            let (cluster, kinds, p) = plan_of(&fake, &dir).await;
            let gone = |name: &str| p.changes.iter().any(|c| c.action == plan::Action::Delete && c.name == name);
            assert!(gone("hello-gateway"), "the ingress gateway is pruned");
            // The Gateway controller writes status after the plan read it.
            fake.set_status(
                "gateway.networking.k8s.io/v1",
                "Gateway",
                Some("demo"),
                "hello-gateway",
                json!({"conditions": []}),
            );
            let outcome = apply::execute(&cluster, &kinds, &p, &apply::Options::default(), false, &|_| {}).await;
            assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
            assert!(fake.get("gateway.networking.k8s.io/v1", "Gateway", Some("demo"), "hello-gateway").is_none());
        });
    }

    #[test]
    fn a_prune_refuses_an_object_changed_since_the_plan() {
        let dir = scratch_example("hello-db", "prune-changed");
        let (fake, _) = applied(&dir);
        drop_postgres(&dir);
        runtime().block_on(async {
            let (cluster, kinds, p) = plan_of(&fake, &dir).await;
            let mut live = fake.get("cilium.io/v2", "CiliumNetworkPolicy", Some("demo"), "ztp-wl-postgres").unwrap();
            live["metadata"]["annotations"]["team.example.com/keep"] = json!("please");
            fake.update_as("kubectl-annotate", live);
            let outcome = apply::execute(&cluster, &kinds, &p, &apply::Options::default(), false, &|_| {}).await;
            assert!(
                outcome
                    .failed
                    .iter()
                    .any(|(id, why)| id.contains("ztp-wl-postgres") && why.contains("changed since the plan")),
                "{:?}",
                outcome.failed
            );
            assert!(fake.get("cilium.io/v2", "CiliumNetworkPolicy", Some("demo"), "ztp-wl-postgres").is_some());
        });
    }
}

/// A generated estate across 24 namespaces (more than ztp lists one by
/// one): a no-op plan lists each kind once cluster-wide and dry-runs
/// nothing; a change dry-runs exactly the objects it changes; where the
/// cluster forbids listing a kind cluster-wide, that kind is listed per
/// namespace and the plan is the same.
#[test]
fn a_wide_estate_is_listed_per_kind_and_dry_runs_only_what_changes() {
    use crate::generated::generate::{Shape, write};
    let dir = std::env::temp_dir().join(format!("ztp-wide-{}", std::process::id())).join("estate");
    let _ = std::fs::remove_dir_all(&dir);
    write(Shape::new(480), &dir).unwrap();
    let fake = FakeKube::builder().controller_delay(Duration::from_millis(1)).start();
    let before = built_objects(&dir);
    seed_services(&fake, &before);
    let path = dir.to_str().unwrap();
    let o = ztp(&fake, &["apply", "--auto-approve", path], None);
    assert_eq!(code(&o), 0, "{}", show(&o));

    fake.clear_log();
    let o = ztp(&fake, &["plan", "--detailed-exitcode", path], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let log = fake.requests();
    let kinds: BTreeSet<&str> = before.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    let pages: Vec<&Logged> = log.iter().filter(|l| l.method == "GET" && is_list(&l.path)).collect();
    let lists = pages.iter().filter(|l| l.param("continue").is_none()).count();
    assert_eq!(dry_runs(&log), 0);
    assert!(lists <= kinds.len(), "{lists} LISTs for {} kinds", kinds.len());
    // In pages of 500, as kubectl asks: a page more per 500 objects.
    assert!(pages.iter().all(|l| l.param("limit").as_deref() == Some("500")), "{pages:?}");
    assert!(pages.len() <= lists + before.len() / 500, "{} pages", pages.len());
    let cnp = "/apis/cilium.io/v2/ciliumnetworkpolicies";
    let policies = before.iter().filter(|o| o["kind"] == "CiliumNetworkPolicy").count();
    assert!(policies > 500, "the estate has more than a page of one kind: {policies}");
    assert!(pages.iter().any(|l| l.path == cnp && l.param("continue").is_some()), "the policies come in pages");
    assert!(log.len() <= pages.len() + 40, "{} requests", log.len());
    let no_op = out(&o);

    // A continue token the server no longer honours: the list starts over
    // as one unpaginated request.
    fake.fault(Fault::at("GET", cnp, 2, FaultAction::Status(410)));
    fake.clear_log();
    let o = ztp(&fake, &["plan", "--detailed-exitcode", path], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(out(&o), no_op);
    let log = fake.requests();
    let cnp_lists: Vec<(Option<String>, Option<String>, u16)> =
        log.iter().filter(|l| l.path == cnp).map(|l| (l.param("limit"), l.param("continue"), l.status)).collect();
    assert_eq!(cnp_lists.len(), 3, "{cnp_lists:?}");
    assert_eq!(cnp_lists[1].2, 410);
    assert_eq!((cnp_lists[2].0.as_deref(), cnp_lists[2].1.as_deref(), cnp_lists[2].2), (None, None, 200));

    // A server that hands back the continue token it was given: an error,
    // not a plan that pages forever.
    let same = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicyList",
        "metadata": {"continue": "again"}, "items": []});
    // (A fault that fires stops the count of those after it: both are "the next one".)
    for _ in 0..2 {
        fake.fault(Fault::at("GET", cnp, 1, FaultAction::Answer(same.clone())));
    }
    let o = ztp(&fake, &["plan", path], None);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(err(&o).contains("the LIST of ciliumnetworkpolicies repeats its continue token"), "{}", show(&o));

    // Every 40th workload serves http on another port.
    write(Shape { moved_ports: 40, ..Shape::new(480) }, &dir).unwrap();
    let after = built_objects(&dir);
    let key = |o: &Value| format!("{}/{}/{}", o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]);
    let old: BTreeMap<String, &Value> = before.iter().map(|o| (key(o), o)).collect();
    let changed: BTreeSet<String> = after.iter().filter(|o| old.get(&key(o)) != Some(o)).map(key).collect();
    assert!(!changed.is_empty() && changed.len() < after.len() / 20, "{} changed", changed.len());
    fake.clear_log();
    let o = ztp(&fake, &["plan", "--detailed-exitcode", "--json", path], None);
    assert_eq!(code(&o), 2, "{}", show(&o));
    let log = fake.requests();
    assert_eq!(dry_runs(&log), changed.len(), "one dry-run per changed object");
    let plan: Value = serde_json::from_str(&out(&o)).unwrap();
    let updated: BTreeSet<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "update")
        .map(|c| format!("{}/{}/{}", c["kind"], c["namespace"], c["name"]))
        .collect();
    assert_eq!(updated, changed);

    // Listing policies cluster-wide is forbidden: per namespace instead.
    fake.fault(Fault::at("GET", "/apis/cilium.io/v2/ciliumnetworkpolicies", 0, FaultAction::Status(403)));
    fake.clear_log();
    let o2 = ztp(&fake, &["plan", "--detailed-exitcode", "--json", path], None);
    assert_eq!(code(&o2), 2, "{}", show(&o2));
    assert_eq!(out(&o2), out(&o), "the same plan either way");
    let log = fake.requests();
    // The stack's namespaces: its owned objects' and its parent's.
    let mut namespaces: BTreeSet<&str> =
        after.iter().filter(|o| !labels_only(o)).filter_map(|o| o["metadata"]["namespace"].as_str()).collect();
    namespaces.insert("istio-system");
    let per_namespace = log
        .iter()
        .filter(|l| l.method == "GET" && is_list(&l.path) && l.path.ends_with("/ciliumnetworkpolicies"))
        .filter(|l| l.path.contains("/namespaces/"))
        .count();
    assert_eq!(per_namespace, namespaces.len());
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}
