//! Every program under `examples/` checks clean (no errors, no warnings)
//! and is already in canonical format.

use crate::support::{example_dirs, relative, ztp_files};
use ztp::driver::{self, Formatted};
use ztp::resolve::load::RealFs;

#[test]
fn there_are_examples() {
    let names: Vec<String> =
        example_dirs().iter().map(|d| d.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(names.contains(&"hello-db".to_string()), "{names:?}");
    assert!(names.len() >= 3, "{names:?}");
}

#[test]
fn examples_check_clean() {
    for dir in example_dirs() {
        let checked = driver::check(&RealFs, &relative(&dir)).unwrap();
        let rendered: Vec<String> =
            checked.diagnostics.sorted().iter().map(|d| ztp::diag::render::human(d, &checked.sources, false)).collect();
        assert!(checked.diagnostics.is_empty(), "{}:\n{}", dir.display(), rendered.join(""));
        assert!(checked.program.is_some());
    }
}

#[test]
fn examples_and_stdlib_are_formatted() {
    let mut dirs = example_dirs();
    dirs.push(crate::support::root().join("stdlib"));
    for dir in dirs {
        for f in ztp_files(&dir) {
            let text = std::fs::read_to_string(&f).unwrap();
            match driver::format_text("x.ztp", &text) {
                Formatted::Ok(out) => similar_asserts(&f.display().to_string(), &text, &out),
                Formatted::Invalid(..) => panic!("{} does not parse", f.display()),
            }
        }
    }
}

fn similar_asserts(name: &str, want: &str, got: &str) {
    if want != got {
        let diff = similar::TextDiff::from_lines(want, got).unified_diff().header("file", "formatted").to_string();
        panic!("{name} is not in canonical format (run `ztp fmt`):\n{diff}");
    }
}

#[test]
fn hello_db_expresses_the_lab() {
    let checked = driver::check(&RealFs, std::path::Path::new("examples/hello-db")).unwrap();
    let p = checked.program.expect("hello-db checks");
    let demo = p.namespaces.iter().find(|n| n.name.value == "demo").unwrap();
    let names: Vec<&str> = demo.workloads.iter().map(|w| w.name.value.as_str()).collect();
    assert_eq!(names, ["hello-app", "postgres"]);
    assert_eq!(demo.gateways.first().unwrap().name.value, "hello-gateway");
    // The L7 flow: GET on three paths, to hello-app:8000.
    let l7: Vec<_> = p.flows.iter().filter_map(|f| f.http.as_ref()).collect();
    assert_eq!(l7.len(), 1);
    let paths: Vec<&str> = l7[0].paths.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(paths, ["/", "/health", "/github"]);
    assert_eq!(l7[0].methods.iter().map(|m| m.value.as_str()).collect::<Vec<_>>(), ["GET"]);
    // FQDN egress to api.github.com:443 only.
    let fqdns: Vec<String> = p
        .flows
        .iter()
        .filter_map(|f| match &f.dst.value {
            ztp::hir::Dest::Fqdn { name, port } => Some(format!("{}:{}", name.value, port.as_ref().unwrap().value)),
            _ => None,
        })
        .collect();
    assert_eq!(fqdns, ["api.github.com:443"]);
    assert!(p.cluster.allow_dns.value && p.cluster.default_deny.value && p.cluster.allow_ambient_probes.value);
    assert_eq!(p.cluster.deny_egress.first().unwrap().value.to_string(), "169.254.169.254/32");
}

/// The ```ztp blocks of a Markdown file.
fn ztp_blocks(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```ztp") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => out.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn documentation_examples_parse_and_complete_ones_check() {
    let mut n = 0;
    for doc in ["README.md", "docs/language.md"] {
        let text = std::fs::read_to_string(crate::support::root().join(doc)).unwrap();
        for block in ztp_blocks(&text) {
            n += 1;
            let parsed = crate::support::parse(&block);
            assert!(parsed.diagnostics.is_empty(), "{doc}: example does not parse:\n{block}\n{:?}", parsed.diagnostics);
            // Examples without local imports are complete programs.
            if !block.contains("import \"common") && !block.contains("import \"shared") {
                let fs = ztp::resolve::load::MemoryFs::default();
                let checked = driver::check_text(&fs, "doc.ztp", block.clone(), std::path::Path::new("")).unwrap();
                let errors: Vec<String> = checked
                    .diagnostics
                    .sorted()
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| ztp::diag::render::human(d, &checked.sources, false))
                    .collect();
                assert!(errors.is_empty(), "{doc}: example has errors:\n{block}\n{}", errors.join(""));
            }
        }
    }
    assert!(n >= 5);
}

/// `explain`, `diff` and `graph` check a program without judging its
/// `expect` lines: the same program, IR and objects, no outcomes.
#[test]
fn an_unjudged_check_is_the_check_without_outcomes() {
    for dir in example_dirs() {
        let judged = driver::check(&RealFs, &relative(&dir)).unwrap();
        let unjudged = driver::check_unjudged(&RealFs, &relative(&dir)).unwrap();
        assert!(unjudged.expectations.is_empty(), "{}", dir.display());
        assert_eq!(unjudged.manifests, judged.manifests, "{}", dir.display());
        assert_eq!(unjudged.diagnostics.sorted().len(), judged.diagnostics.sorted().len(), "{}", dir.display());
    }
    let failing = std::path::Path::new("tests/fixtures/diagnostics/Z0613-l7-requests.ztp");
    let judged = driver::check(&RealFs, failing).unwrap();
    assert_eq!(judged.expectations.iter().filter(|o| o.failure.is_some()).count(), 3);
    assert!(judged.manifests.is_none(), "a failed expectation builds nothing");
    let unjudged = driver::check_unjudged(&RealFs, failing).unwrap();
    assert!(unjudged.diagnostics.is_empty() && unjudged.manifests.is_some() && unjudged.ir.is_some());
}
