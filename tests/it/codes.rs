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

/// The example of a doc page: its files (name, text) and the output shown.
struct PageExample {
    files: Vec<(String, String)>,
    output: String,
    /// Byte range of the output block's body in the page, for blessing.
    output_at: std::ops::Range<usize>,
}

fn page_example(doc: &str) -> Option<PageExample> {
    let start = doc.find("## Example")?;
    let end = doc[start..].find("## How to fix").map_or(doc.len(), |e| start + e);
    let section = &doc[start..end];
    let mut files = Vec::new();
    let mut name: Option<String> = None;
    let mut pos = 0;
    let mut lines = section.split_inclusive('\n');
    let mut output = None;
    while let Some(line) = lines.next() {
        let line_start = pos;
        pos += line.len();
        let t = line.trim();
        if let Some(n) = t.strip_prefix('`').and_then(|r| r.strip_suffix("`:")) {
            name = Some(n.to_string());
        } else if t == "```ztp" {
            let mut body = String::new();
            for l in lines.by_ref() {
                pos += l.len();
                if l.trim() == "```" {
                    break;
                }
                body.push_str(l);
            }
            files.push((name.take().unwrap_or_else(|| "example.ztp".into()), body));
        } else if t == "```text" {
            let body_start = start + line_start + line.len();
            let mut body = String::new();
            for l in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                pos += l.len();
                body.push_str(l);
            }
            output = Some((body, body_start..start + pos));
            break;
        }
    }
    let (output, output_at) = output?;
    Some(PageExample { files, output, output_at })
}

fn trim_lines(s: &str) -> String {
    s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n").trim_end().to_string()
}

/// Each page's example, run through ztp, prints exactly the output the page
/// shows. `ZTP_BLESS_DOCS=1 cargo test doc_page_examples` rewrites the pages.
#[test]
fn doc_page_examples_print_what_the_page_shows() {
    let bless = std::env::var_os("ZTP_BLESS_DOCS").is_some();
    let mut stale = Vec::new();
    for c in TABLE {
        let ex = page_example(c.doc).unwrap_or_else(|| panic!("{}: no example with output", c.code));
        let mut files: Vec<(String, Vec<u8>)> =
            ex.files.iter().map(|(n, t)| (n.clone(), t.clone().into_bytes())).collect();
        if c.code.as_str() == "Z0005" {
            // The page's example was saved as Latin-1.
            for (_, bytes) in &mut files {
                let text = String::from_utf8(bytes.clone()).unwrap();
                *bytes = text.chars().map(|ch| u8::try_from(u32::from(ch)).unwrap()).collect();
            }
        }
        let fs = ztp::resolve::load::MemoryFs { files: files.into_iter().map(|(n, b)| (n.into(), b)).collect() };
        let entry = ex.files.first().map(|(n, _)| n.clone()).unwrap();
        let checked = ztp::driver::check(&fs, std::path::Path::new(&entry)).unwrap();
        let ds = checked.diagnostics.sorted();
        let own: Vec<_> = ds.iter().map(|d| d.code).collect();
        assert!(own.contains(&c.code), "{}: the example does not produce its own code (got {own:?})", c.code);
        let rendered: String = ds.iter().map(|d| ztp::diag::render::human(d, &checked.sources, false)).collect();
        if trim_lines(&rendered) != trim_lines(&ex.output) {
            if bless {
                let path = root().join(format!("src/diag/codes/{}.md", c.code));
                let mut page = std::fs::read_to_string(&path).unwrap();
                page.replace_range(ex.output_at.clone(), &format!("{}\n", trim_lines(&rendered)));
                std::fs::write(&path, page).unwrap();
            }
            stale.push(c.code.to_string());
        }
    }
    assert!(
        bless || stale.is_empty(),
        "doc pages whose example output is stale (bless with ZTP_BLESS_DOCS=1): {stale:?}"
    );
}
