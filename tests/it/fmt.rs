//! The formatter: snapshots of formatted output, and for every fixture and
//! example that parses: `fmt(fmt(x)) == fmt(x)`, the comment count is
//! unchanged, and the AST of `fmt(x)` equals the AST of `x` (spans aside).

use crate::support::{parse, root, shape, ztp_files};
use ztp::driver::{self, Formatted};

/// Asserts the formatter's invariants on one text that parses; returns the
/// formatted text.
pub fn check_invariants(name: &str, text: &str) -> Option<String> {
    let before = parse(text);
    let file = before.file.as_ref()?;
    let once = match driver::format_text(name, text) {
        Formatted::Ok(s) => s,
        Formatted::Invalid(..) => panic!("{name}: parses but the formatter refused it"),
    };
    let after = parse(&once);
    let refile = after.file.as_ref().unwrap_or_else(|| panic!("{name}: formatted text does not parse:\n{once}"));
    assert_eq!(shape(file), shape(refile), "{name}: formatting changed the AST\n--- formatted\n{once}");
    assert_eq!(
        before.trivia.comments.len(),
        after.trivia.comments.len(),
        "{name}: formatting changed the number of comments\n--- formatted\n{once}"
    );
    let texts = |p: &ztp::syntax::Parsed| p.trivia.comments.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&before), texts(&after), "{name}: comments changed");
    let twice = match driver::format_text(name, &once) {
        Formatted::Ok(s) => s,
        Formatted::Invalid(..) => panic!("{name}: formatted text does not parse"),
    };
    assert_eq!(once, twice, "{name}: formatting is not idempotent\n--- once\n{once}\n--- twice\n{twice}");
    Some(once)
}

#[test]
fn formatted_output_snapshots() {
    insta::glob!("../fixtures", "fmt/*.ztp", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let out = check_invariants(&path.display().to_string(), &text).expect("fmt fixtures parse");
        insta::assert_snapshot!(format!("{text}--- formatted\n{out}"));
    });
}

#[test]
fn invariants_hold_for_every_fixture_and_example() {
    let mut checked = 0;
    for dir in ["tests/fixtures", "examples", "stdlib"] {
        for f in ztp_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&f).unwrap();
            if check_invariants(&f.display().to_string(), &text).is_some() {
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} files parsed");
}

#[test]
fn a_file_that_does_not_parse_is_refused() {
    assert!(matches!(driver::format_text("x.ztp", "namespace {"), Formatted::Invalid(..)));
}

#[test]
fn empty_and_comment_only_files() {
    assert_eq!(check_invariants("e", "").unwrap(), "");
    assert_eq!(check_invariants("c", "\n\n// only a comment\n\n").unwrap(), "// only a comment\n");
}
