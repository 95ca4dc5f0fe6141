//! The code table and the doc pages match one to one.

use crate::support::root;
use std::collections::BTreeSet;
use ztp::diag::codes::TABLE;

#[test]
fn every_code_has_exactly_one_doc_page_and_every_page_a_code() {
    let pages: BTreeSet<String> = std::fs::read_dir(root().join("src/diag/codes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = TABLE.iter().map(|c| format!("{}.md", c.code)).collect();
    assert_eq!(pages, expected, "doc pages and the code table differ");
    let unique: BTreeSet<_> = TABLE.iter().map(|c| c.code).collect();
    assert_eq!(unique.len(), TABLE.len(), "a code is listed twice");
}

#[test]
fn doc_pages_have_the_expected_sections() {
    for c in TABLE {
        let first = c.doc.lines().next().unwrap_or("");
        assert_eq!(first, format!("# {}: {}", c.code, c.title), "{}: first line must be `# CODE: title`", c.code);
        for section in ["## Example", "## How to fix"] {
            assert!(c.doc.contains(section), "{}: missing `{section}`", c.code);
        }
    }
}

#[test]
fn codes_are_in_order_and_well_formed() {
    let list: Vec<&str> = TABLE.iter().map(|c| c.code.as_str()).collect();
    let mut sorted = list.clone();
    sorted.sort();
    assert_eq!(list, sorted);
    assert!(list.iter().all(|c| c.len() == 5 && c.starts_with("Z0")));
}

#[test]
fn every_code_is_exercised_by_a_fixture() {
    let mut seen = BTreeSet::new();
    for f in crate::support::ztp_files(&root().join("tests/fixtures/diagnostics")) {
        let text = std::fs::read_to_string(&f).unwrap();
        seen.extend(crate::diagnostics::expected_codes(&text));
    }
    let missing: Vec<&str> = TABLE.iter().map(|c| c.code.as_str()).filter(|c| !seen.contains(*c)).collect();
    assert!(missing.is_empty(), "codes without a fixture: {missing:?}");
}
