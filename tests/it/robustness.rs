//! No input makes `check`, `build` or `fmt` panic or overflow the stack. Every example
//! and fixture is mutated many ways (deletions, duplications, swapped
//! characters and tokens, truncation, random bytes, deep nesting) and each
//! mutant must produce diagnostics or success. Mutants that parse must also
//! keep the formatter's invariants. A proptest over token soup does the same
//! within a bounded number of cases.

use crate::fmt::check_invariants;
use crate::support::{root, ztp_files};
use proptest::prelude::*;
use std::path::Path;
use ztp::driver;
use ztp::resolve::load::MemoryFs;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

const NOISE: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\"",
    "\\",
    "->",
    ":",
    "/",
    ",",
    "=",
    "//",
    "\n",
    "allow",
    "expect deny",
    "namespace",
    "workload",
    "except",
    "world",
    "namespace(",
    "10.0.0.0/8",
    "::/0",
    "*.",
    "**.",
    "99999999999999999999",
    "é",
    "\u{0}",
    "\u{202e}",
    "🦀",
    "\t",
    "let",
    "import",
    "\"std/",
    "route",
    "http {",
];

fn char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(text: &str, rng: &mut Rng) -> String {
    let len = text.len();
    let a = char_boundary(text, rng.below(len + 1));
    let b = char_boundary(text, a + rng.below(40));
    match rng.below(8) {
        0 => format!("{}{}", &text[..a], &text[b..]),
        1 => format!("{}{}{}", &text[..b], &text[a..b], &text[b..]),
        2 => {
            let chars: Vec<char> = text.chars().collect();
            let mut chars = chars;
            if chars.len() > 1 {
                let i = rng.below(chars.len());
                let j = rng.below(chars.len());
                chars.swap(i, j);
            }
            chars.into_iter().collect()
        }
        3 => {
            let mut toks: Vec<&str> = text.split_inclusive(char::is_whitespace).collect();
            if toks.len() > 1 {
                let i = rng.below(toks.len());
                let j = rng.below(toks.len());
                toks.swap(i, j);
            }
            toks.concat()
        }
        4 => text[..a].to_string(),
        5 => {
            let noise = NOISE[rng.below(NOISE.len())];
            format!("{}{}{}", &text[..a], noise, &text[a..])
        }
        6 => {
            let bytes: String =
                (0..rng.below(8) + 1).map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('?')).collect();
            format!("{}{}{}", &text[..a], bytes, &text[a..])
        }
        _ => {
            let (open, close) = [("[", "]"), ("{", "}"), ("(", ")")][rng.below(3)];
            let n = 10_000;
            format!("{}{}{}{}", &text[..a], open.repeat(n), close.repeat(rng.below(2) * n), &text[a..])
        }
    }
}

fn exercise(text: &str) {
    let fs = MemoryFs::default();
    let checked = driver::check_text(&fs, "mutant.ztp", text.to_string(), Path::new("")).unwrap();
    // Rendering must not panic either.
    for d in checked.diagnostics.iter() {
        let _ = ztp::diag::render::human(d, &checked.sources, false);
        let _ = ztp::diag::render::json(d, &checked.sources);
    }
    // A mutant that still checks must also build.
    if let Some(ir) = &checked.ir {
        let ms = ztp::backend::emit(ir);
        let _ = ztp::manifest::to_yaml(&ms);
    }
    let _ = check_invariants("mutant.ztp", text);
}

#[test]
fn mutants_of_every_example_and_fixture_never_panic() {
    let mut files = ztp_files(&root().join("examples"));
    files.extend(ztp_files(&root().join("tests/fixtures")));
    files.extend(ztp_files(&root().join("stdlib")));
    assert!(!files.is_empty());
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for _ in 0..24 {
            let mut m = mutate(&text, &mut rng);
            if rng.below(3) == 0 {
                m = mutate(&m, &mut rng);
            }
            exercise(&m);
        }
    }
}

#[test]
fn hostile_nesting_is_a_diagnostic() {
    for (open, close) in [("[", "]"), ("{", "}"), ("(", ")")] {
        for text in [
            format!("let x = {}{}", open.repeat(10_000), close.repeat(10_000)),
            format!("namespace a {}", open.repeat(100_000)),
            close.repeat(10_000).to_string(),
        ] {
            let fs = MemoryFs::default();
            let checked = driver::check_text(&fs, "deep.ztp", text, Path::new("")).unwrap();
            assert!(checked.diagnostics.has_errors());
        }
    }
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(NOISE.to_vec()).prop_map(String::from),
        "[a-z][a-z0-9-]{0,8}",
        "[0-9]{1,6}",
        "\"[a-z.*/]{0,10}\"",
        Just(" ".to_string()),
        Just("\n".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(token(), 0..60)) {
        exercise(&tokens.join(" "));
    }

    #[test]
    fn structured_soup_never_panics(
        names in proptest::collection::vec("[a-z][a-z0-9-]{0,6}", 1..6),
        port in 0u32..70000,
        noise in proptest::collection::vec(token(), 0..6),
    ) {
        let mut text = String::from("namespace ns {\n");
        for n in &names {
            text.push_str(&format!("  workload {n} {{ port p {{ number = {port}, protocol = http }} }}\n"));
        }
        if let (Some(a), Some(b)) = (names.first(), names.last()) {
            text.push_str(&format!("  allow {a} -> {b}:p {{ http {{ methods = [GET] }} }}\n"));
        }
        text.push_str(&noise.join(" "));
        text.push_str("\n}\n");
        exercise(&text);
    }
}
