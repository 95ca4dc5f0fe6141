//! Criterion benches for the cluster commands against the in-process fake
//! API server of the cluster tests (`tests/it/fakeapi.rs`), over real HTTP:
//! `ztp apply` into an empty server, a no-op `ztp plan` against the
//! applied output, and a plan after a change that touches about 1% of the
//! objects. Each runs the `ztp` binary as a user would, compile included.
//! `cargo bench --bench cluster` measures the 1,000-workload estate;
//! `ZTP_BENCH_LARGE=1` adds 10,000 (its apply takes minutes per sample).
//!
//! Before timing, each size is applied once and planned once with the
//! server's request log read back, and the counts are printed: requests,
//! LISTs and dry-runs of the no-op plan, and dry-runs against changed
//! objects of the 1% plan. The cluster tests hold the same counts to their
//! bounds; here they are reported next to the times.

#[allow(dead_code)]
#[path = "../tests/it/fakeapi.rs"]
mod fakeapi;
#[path = "support/generate.rs"]
mod generate;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fakeapi::{FakeKube, Logged};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn sizes() -> Vec<usize> {
    let mut s = vec![1_000];
    if std::env::var_os("ZTP_BENCH_LARGE").is_some() {
        s.push(10_000);
    }
    s
}

/// Every this many workloads, one serves `http` on another port: the
/// change the 1% plan sees.
const MOVED_EVERY: usize = 40;

/// A scratch directory with the estate, and one with its changed revision.
fn estates(n: usize) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("ztp-bench-cluster-{}-{n}", std::process::id()));
    // One stack name (the directory's) for both.
    let (now, changed) = (base.join("now").join("estate"), base.join("changed").join("estate"));
    generate::write(generate::Shape::new(n), &now).unwrap();
    generate::write(generate::Shape { moved_ports: MOVED_EVERY, ..generate::Shape::new(n) }, &changed).unwrap();
    (now, changed)
}

fn ztp(fake: &FakeKube, args: &[&str]) -> std::process::Output {
    let o = Command::new(env!("CARGO_BIN_EXE_ztp"))
        .args(args)
        .arg("--kubeconfig")
        .arg(fake.kubeconfig())
        .args(["--context", "fake"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        matches!(o.status.code(), Some(0 | 2)),
        "ztp {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The program's objects, as `ztp build --format json` writes them.
fn built(dir: &Path) -> Vec<Value> {
    let o = Command::new(env!("CARGO_BIN_EXE_ztp"))
        .args(["build", "--format", "json", "-o", "-"])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let mut objects = Vec::new();
    for doc in serde_json::Deserializer::from_slice(&o.stdout).into_iter::<Value>() {
        let doc = doc.unwrap();
        match doc["items"].as_array() {
            Some(items) => objects.extend(items.iter().cloned()),
            None => objects.push(doc),
        }
    }
    objects
}

/// A fake holding what a cluster has before ztp: the namespaces and the
/// Services that ztp labels.
fn cluster_for(objects: &[Value]) -> FakeKube {
    let fake = FakeKube::builder().controller_delay(Duration::from_millis(1)).start();
    let mut seed = Vec::new();
    let mut namespaces = BTreeSet::new();
    for o in objects.iter().filter(|o| o["kind"] == "Service") {
        let (name, ns) = (&o["metadata"]["name"], o["metadata"]["namespace"].as_str().unwrap_or("default"));
        if namespaces.insert(ns.to_string()) {
            seed.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        seed.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
        }));
    }
    seed.push(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}}),
    );
    fake.put_all(seed);
    fake
}

fn apply(fake: &FakeKube, dir: &Path) -> Duration {
    let start = Instant::now();
    ztp(fake, &["apply", "--auto-approve", dir.to_str().unwrap()]);
    start.elapsed()
}

fn plan(fake: &FakeKube, dir: &Path) -> Duration {
    let start = Instant::now();
    ztp(fake, &["plan", dir.to_str().unwrap()]);
    start.elapsed()
}

fn dry_runs(log: &[Logged]) -> usize {
    log.iter().filter(|l| l.is_dry_run()).count()
}

/// GETs of a collection (`…/plural`, `…/namespaces/NS/plural`): LISTs.
fn lists(log: &[Logged]) -> usize {
    let is_list = |path: &str| {
        let rest = match path.strip_prefix("/api/v1/") {
            Some(rest) => rest,
            None => path.strip_prefix("/apis/").and_then(|p| p.splitn(3, '/').nth(2)).unwrap_or(""),
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        segments.len() == 1 || (segments.len() == 3 && segments.first() == Some(&"namespaces"))
    };
    log.iter().filter(|l| l.method == "GET" && is_list(&l.path)).count()
}

/// `kind/namespace/name` of each object whose JSON differs between the two builds.
fn changed(before: &[Value], after: &[Value]) -> usize {
    let key = |o: &Value| format!("{}/{}/{}", o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]);
    let old: std::collections::BTreeMap<String, &Value> = before.iter().map(|o| (key(o), o)).collect();
    after.iter().filter(|o| old.get(&key(o)) != Some(o)).count()
}

fn cluster(c: &mut Criterion) {
    for n in sizes() {
        let (now, moved) = estates(n);
        let objects = built(&now);
        let count = objects.len();

        // Once, with the log read back.
        let fake = cluster_for(&objects);
        let took = apply(&fake, &now);
        eprintln!("{n} workloads: apply of {count} objects into an empty server: {took:.2?}");
        fake.clear_log();
        let took = plan(&fake, &now);
        let log = fake.requests();
        eprintln!(
            "{n} workloads: no-op plan: {took:.2?}, {} requests, {} LISTs, {} dry-runs",
            log.len(),
            lists(&log),
            dry_runs(&log)
        );
        fake.clear_log();
        let took = plan(&fake, &moved);
        let log = fake.requests();
        eprintln!(
            "{n} workloads: plan with {} of {count} objects changed: {took:.2?}, {} requests, {} dry-runs",
            changed(&objects, &built(&moved)),
            log.len(),
            dry_runs(&log)
        );

        let mut g = c.benchmark_group(format!("cluster/{n}"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(count as u64));
        g.bench_function(BenchmarkId::new("apply-empty", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let fake = cluster_for(&objects);
                    total += apply(&fake, &now);
                }
                total
            })
        });
        g.bench_function(BenchmarkId::new("plan-no-op", n), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| plan(&fake, &now)).sum())
        });
        g.bench_function(BenchmarkId::new("plan-1pct", n), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| plan(&fake, &moved)).sum())
        });
        g.finish();
        drop(fake);
        let _ = std::fs::remove_dir_all(now.parent().and_then(Path::parent).unwrap_or(&now));
    }
}

criterion_group!(benches, cluster);
criterion_main!(benches);
