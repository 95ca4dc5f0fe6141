//! Runs the stages in order and collects their diagnostics.
//!
//! `check`: load (files, imports) → parse → resolve → typeck. Resolution is
//! skipped when any file has syntax errors, so that a broken declaration
//! does not cascade into unknown-name errors elsewhere. `format_text` is the
//! formatter's entry: parse one text, print it canonically.

use crate::diag::{Diagnostic, Diagnostics};
use crate::hir::Program;
use crate::resolve::load::{self, FileSystem, LoadError, Loaded};
use crate::source::{SourceId, SourceMap};
use crate::{fmt, resolve, syntax, typeck};
use std::path::Path;

/// The outcome of checking a program.
pub struct Checked {
    pub sources: SourceMap,
    /// The checked program, when there were no errors.
    pub program: Option<Program>,
    pub diagnostics: Diagnostics,
    pub file_count: usize,
}

/// Checks the program at `path` (a `.ztp` file or a directory).
pub fn check(fs: &dyn FileSystem, path: &Path) -> Result<Checked, LoadError> {
    Ok(check_loaded(load::load(fs, path)?))
}

/// Checks one in-memory text; imports are resolved from `dir`.
pub fn check_text(fs: &dyn FileSystem, name: &str, text: String, dir: &Path) -> Checked {
    check_loaded(load::load_text(fs, name, text, dir))
}

fn check_loaded(loaded: Loaded) -> Checked {
    let mut diagnostics = Diagnostics::new();
    diagnostics.extend(loaded.diagnostics.iter().cloned());
    let file_count = loaded.files.iter().filter(|f| !f.is_stdlib).count();
    let parsed_all = loaded.files.iter().all(|f| f.ast.is_some());
    let mut program = None;
    if parsed_all {
        let (p, ds) = resolve::resolve(&loaded);
        diagnostics.extend(ds);
        if !diagnostics.has_errors() {
            diagnostics.extend(typeck::check(&p));
        }
        if !diagnostics.has_errors() {
            program = Some(p);
        }
    }
    Checked { sources: loaded.sources, program, diagnostics, file_count }
}

/// The result of formatting one text.
pub enum Formatted {
    /// The canonical text (possibly equal to the input).
    Ok(String),
    /// The text does not parse; it must be left as it is.
    Invalid(SourceMap, Vec<Diagnostic>),
}

/// Formats one text. `name` is used in diagnostics.
pub fn format_text(name: &str, text: &str) -> Formatted {
    let mut sources = SourceMap::new();
    let id: SourceId = sources.add(name, crate::source::Origin::Stdin, text);
    let parsed = syntax::parse(id, text);
    let errors: Vec<Diagnostic> = parsed.diagnostics.into_iter().filter(Diagnostic::is_error).collect();
    match parsed.file {
        Some(file) if errors.is_empty() => Formatted::Ok(fmt::format(&file, &parsed.trivia, text)),
        _ => Formatted::Invalid(sources, errors),
    }
}
