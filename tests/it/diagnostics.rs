//! The fixture corpus: every program under `tests/fixtures/diagnostics/`
//! must produce exactly the codes its `// expect: Z0xxx` lines list, and its
//! rendered diagnostics are snapshotted with the source. A fixture is a
//! `.ztp` file, or a directory whose `main.ztp` holds the expectations.

use crate::support::relative;
use std::path::Path;
use ztp::diag::render;
use ztp::driver;
use ztp::resolve::load::RealFs;

pub fn expected_codes(text: &str) -> Vec<String> {
    text.lines().filter_map(|l| l.trim().strip_prefix("// expect:")).map(|c| c.trim().to_string()).collect()
}

/// Checks one fixture program and returns the snapshot text.
fn run(program: &Path, expect_from: &Path) -> String {
    let rel = relative(program);
    let checked = driver::check(&RealFs, &rel).unwrap();
    let ds = checked.diagnostics.sorted();
    let mut got: Vec<String> = ds.iter().map(|d| d.code.to_string()).collect();
    got.sort();
    let mut want = expected_codes(&std::fs::read_to_string(expect_from).unwrap());
    want.sort();
    let mut out = String::new();
    for (_, f) in checked.sources.iter() {
        if f.name.starts_with("std/") {
            continue;
        }
        out.push_str(&format!("--- {}\n{}", f.name, f.text));
        if !f.text.ends_with('\n') {
            out.push('\n');
        }
    }
    out.push_str("--- diagnostics\n");
    for d in &ds {
        out.push_str(&render::human(d, &checked.sources, false));
    }
    assert_eq!(got, want, "codes for {} differ from its expect lines\n{out}", rel.display());
    assert!(!want.is_empty(), "{} has no `// expect:` line", rel.display());
    out
}

#[test]
fn file_fixtures() {
    insta::glob!("../fixtures", "diagnostics/*.ztp", |path| {
        insta::assert_snapshot!(run(path, path));
    });
}

#[test]
fn directory_fixtures() {
    insta::glob!("../fixtures", "diagnostics/*/main.ztp", |path| {
        let dir = path.parent().unwrap();
        insta::assert_snapshot!(run(dir, path));
    });
}

#[test]
fn json_diagnostics_carry_code_file_bytes_and_positions() {
    let fs = ztp::resolve::load::MemoryFs::with(&[("a.ztp", "namespace demo {\n  allow x -> y\n}\n")]);
    let checked = driver::check(&fs, Path::new("a.ztp")).unwrap();
    let lines: Vec<String> = checked.diagnostics.sorted().iter().map(|d| render::json(d, &checked.sources)).collect();
    insta::assert_snapshot!(lines.join("\n"));
}
