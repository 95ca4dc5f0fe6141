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
