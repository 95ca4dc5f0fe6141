//! Writes synthetic ztp programs of a chosen size, for benchmarks and for
//! measuring the command line by hand.
//!
//! The shape follows the estates ztp is built for: 20 workloads per
//! namespace (50 namespaces per 1,000 workloads), about three flows per
//! workload (one within the namespace, two across), an `http` block on 10%
//! of the workloads, FQDN egress on 20%, CIDR egress on 5%, and one gateway
//! per 50 namespaces. Ten namespaces go in one file. The text is a pure
//! function of the sizes, so every run measures the same program.

// Each bench, the example and the tests include this file and use part of it.
#![allow(dead_code)]

/// Workloads per namespace.
pub const PER_NAMESPACE: usize = 20;
/// Namespaces per file.
pub const NAMESPACES_PER_FILE: usize = 10;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub workloads: usize,
    /// `expect` lines, spread evenly over the workloads; half allow, half deny.
    pub expectations: usize,
    /// Every this many workloads, one serves `http` on 8081 instead of
    /// 8080 (0: none): a small change to plan against the original.
    pub moved_ports: usize,
}

impl Shape {
    pub fn new(workloads: usize) -> Shape {
        Shape { workloads, expectations: 0, moved_ports: 0 }
    }

    pub fn namespaces(&self) -> usize {
        self.workloads.div_ceil(PER_NAMESPACE).max(1)
    }
}

fn namespace_of(i: usize) -> usize {
    i / PER_NAMESPACE
}

fn workload(i: usize) -> String {
    format!("svc-{i}")
}

/// `svc-7`, or `ns-3/svc-67` when `i` lives in another namespace than `from`.
fn reference(from: usize, i: usize) -> String {
    if namespace_of(from) == namespace_of(i) { workload(i) } else { format!("ns-{}/{}", namespace_of(i), workload(i)) }
}

/// The workloads `i` calls: the next one in its namespace, and two in
/// other namespaces. Never itself, never the same target twice.
fn targets(i: usize, n: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    if n < 2 {
        return out;
    }
    let ns = namespace_of(i);
    let first = ns * PER_NAMESPACE;
    let size = PER_NAMESPACE.min(n - first);
    if size > 1 {
        out.push(first + (i - first + 1) % size);
    }
    for step in [PER_NAMESPACE * 3 + 7, PER_NAMESPACE * 17 + 11] {
        let t = (i + step) % n;
        if t != i && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Whether workload `i`'s HTTP port is served behind L7 rules.
fn has_l7(i: usize) -> bool {
    i % 10 == 4
}

/// The program's files, as (file name, text), in order.
pub fn program(shape: Shape) -> Vec<(String, String)> {
    let n = shape.workloads;
    let namespaces = shape.namespaces();
    let mut files = Vec::new();
    let mut main = String::from(
        "// A generated estate: see benches/support/generate.rs.\n\n\
         import \"std/baseline\"\n\n\
         mesh { trust_domain = \"cluster.local\", mtls = strict }\n\n\
         cluster { cilium_version = \"1.18\" }\n",
    );
    let expect_every = if shape.expectations == 0 { 0 } else { n.div_ceil(shape.expectations).max(1) };
    let mut expected = 0;
    for file in 0..namespaces.div_ceil(NAMESPACES_PER_FILE) {
        let mut text = if file == 0 { std::mem::take(&mut main) } else { String::new() };
        for ns in file * NAMESPACES_PER_FILE..((file + 1) * NAMESPACES_PER_FILE).min(namespaces) {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!("namespace ns-{ns} {{\n"));
            let first = ns * PER_NAMESPACE;
            let last = ((ns + 1) * PER_NAMESPACE).min(n);
            if ns % 50 == 0 && first < last {
                text.push_str(&format!(
                    "  gateway gw-{ns} {{\n    listener http {{ port = 80 }}\n    route \"/\" -> {}:http\n  }}\n\n",
                    workload(first)
                ));
                text.push_str(&format!("  allow world -> gw-{ns}:http\n"));
                text.push_str(&format!("  allow gw-{ns} -> {}:http\n\n", workload(first)));
            }
            for i in first..last {
                let http = if shape.moved_ports > 0 && i % shape.moved_ports == 3 { 8081 } else { 8080 };
                text.push_str(&format!(
                    "  workload {} {{\n    service_account = \"{}\"\n    selector {{ app = \"{}\" }}\n    port http {{ number = {http}, protocol = http }}\n    port metrics {{ number = 9090, protocol = http }}\n  }}\n",
                    workload(i),
                    workload(i),
                    workload(i)
                ));
            }
            text.push('\n');
            for i in first..last {
                for t in targets(i, n) {
                    let to = reference(i, t);
                    if has_l7(t) {
                        text.push_str(&format!(
                            "  allow {} -> {to}:http {{\n    http {{ methods = [GET, POST], paths = [\"/api/{t}\", \"/health\"] }}\n  }}\n",
                            workload(i)
                        ));
                    } else {
                        text.push_str(&format!("  allow {} -> {to}:http\n", workload(i)));
                    }
                }
                if i % 5 == 1 {
                    text.push_str(&format!("  allow {} -> \"api-{}.example.com\":443\n", workload(i), i % 97));
                }
                if i % 20 == 7 {
                    let b = i % 250;
                    text.push_str(&format!("  allow {} -> 10.{b}.0.0/16:5432 except 10.{b}.99.0/24\n", workload(i)));
                }
                if expect_every > 0 && i % expect_every == 0 && expected < shape.expectations {
                    expected += 1;
                    match targets(i, n).first() {
                        Some(&t) if expected % 2 == 0 => {
                            text.push_str(&format!("  expect allow {} -> {}:http\n", workload(i), reference(i, t)));
                        }
                        _ => {
                            text.push_str(&format!(
                                "  expect deny {} -> \"api-nowhere.example.org\":443\n",
                                workload(i)
                            ));
                        }
                    }
                }
            }
            text.push_str("}\n");
        }
        files.push((format!("estate-{file:03}.ztp"), text));
    }
    if files.is_empty() {
        files.push(("estate-000.ztp".to_string(), main));
    }
    files
}

/// Writes the program into `dir` (created if missing), replacing any
/// generated files already there.
pub fn write(shape: Shape, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "ztp") {
            std::fs::remove_file(path)?;
        }
    }
    for (name, text) in program(shape) {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}
