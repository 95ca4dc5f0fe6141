//! Hand-written policy sets under `tests/fixtures/verify/`, read as foreign
//! YAML (`--manifests`): each folder holds `manifests/` and an
//! `expectations` file with the verdicts a careful Cilium and Istio
//! engineer gives, and why. Every expectation must hold, and the snapshot
//! keeps what the reader reported and each flow's explanation.

use std::path::Path;
use ztp::source::SourceMap;
use ztp::verify::estate::{self, Estate};
use ztp::verify::report;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One fixture: the reader's report, the expectations' outcomes and every
/// explanation; and how many expectations failed.
pub fn run_fixture(dir: &Path) -> (String, usize) {
    let estate = Estate::read(&dir.join("manifests"), "cluster.local", "istio-system").unwrap();
    let text = std::fs::read_to_string(dir.join("expectations")).unwrap();
    let mut sources = SourceMap::new();
    let (expectations, problems) = estate::parse_expectations("expectations", &text, &mut sources);
    assert!(problems.is_empty(), "{}: {problems:?}", dir.display());
    let model = estate.model();
    let (outcomes, unknown) = estate::run_expectations(&estate, &model, &expectations, &sources);
    assert!(unknown.is_empty(), "{}: {unknown:?}", dir.display());
    let (listing, failed) = report::test_text(&outcomes, &sources);
    let mut out = format!("# read\n{}\n# expectations\n{listing}\n# explanations\n", estate.set.report());
    for e in &expectations {
        let explained = estate::explain(&estate, &model, &e.src, &e.dst, e.request.as_ref(), e.pod_ip).unwrap();
        out.push_str(&report::explain_text(&explained));
    }
    (out, failed)
}

#[test]
fn hand_written_policy_sets_get_a_careful_engineers_verdicts() {
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("tests/fixtures/verify"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 3);
    let mut failures = Vec::new();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (out, failed) = run_fixture(&dir);
        if failed > 0 {
            failures.push(format!("{name}:\n{}", out.split("# explanations").next().unwrap_or("")));
        }
        insta::assert_snapshot!(format!("verify_fixture_{name}"), out);
    }
    assert!(failures.is_empty(), "expectations that do not hold:\n{}", failures.join("\n"));
}
