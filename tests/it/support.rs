//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use ztp::ast::File;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path relative to the crate root, as the snapshots show it.
pub fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(root()).map(Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf())
}

/// Every `.ztp` file under `dir`, recursively, sorted.
pub fn ztp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "ztp") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every example program (a directory under `examples/`).
pub fn example_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(root().join("examples")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

/// The Debug form of an AST with every span removed, for comparing trees.
pub fn shape(file: &File) -> String {
    let dbg = format!("{file:#?}");
    let mut out = String::with_capacity(dbg.len());
    let mut chars = dbg.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '@' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            while chars.peek().is_some_and(|d| d.is_ascii_digit() || *d == '.') {
                chars.next();
            }
            continue;
        }
        out.push(c);
    }
    out
}

pub fn parse(text: &str) -> ztp::syntax::Parsed {
    ztp::syntax::parse(ztp::source::SourceId(0), text)
}

/// A scratch copy of `examples/<name>` (unique per process and `tag`), to edit.
pub fn scratch_example(name: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ztp-example-{}-{tag}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(root().join("examples").join(name)).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// Replaces the first `from` in `dir/main.ztp` (which must contain it).
pub fn edit(dir: &Path, from: &str, to: &str) {
    let path = dir.join("main.ztp");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// The objects `ztp build` emits for a program, as JSON.
pub fn built_objects(path: &Path) -> Vec<serde_json::Value> {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ztp"))
        .args(["build", "--format", "json", "-o", "-"])
        .arg(path)
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut objects = Vec::new();
    for doc in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
        let doc = doc.unwrap();
        match doc["items"].as_array() {
            Some(items) => objects.extend(items.iter().cloned()),
            None => objects.push(doc),
        }
    }
    objects
}

/// What a cluster has before ztp: the Services (with ports) that the
/// program labels, their Namespaces, and kube-dns.
pub fn seed_services(fake: &crate::fakeapi::FakeKube, objects: &[serde_json::Value]) {
    use serde_json::json;
    let mut seed = Vec::new();
    let mut namespaces = std::collections::BTreeSet::new();
    for o in objects.iter().filter(|o| o["kind"] == "Service") {
        let ns = o["metadata"]["namespace"].as_str().unwrap();
        if fake.get("v1", "Namespace", None, ns).is_none() && namespaces.insert(ns) {
            seed.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        seed.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": o["metadata"]["name"], "namespace": ns, "labels": {"app": o["metadata"]["name"]}},
            "spec": {"selector": {"app": o["metadata"]["name"]}, "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}]},
        }));
    }
    seed.push(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}}),
    );
    fake.put_all(seed);
}
