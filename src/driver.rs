//! Runs the stages in order and collects their diagnostics.
//!
//! `check`: load (files, imports) → parse → resolve → typeck → IR checks →
//! emit → `expect` lines judged over the emitted objects.
//! Resolution is skipped when any file has syntax errors, so that a broken
//! declaration does not cascade into unknown-name errors elsewhere; the
//! program rules run on whatever resolved; lowering needs no errors. `format_text` is the
//! formatter's entry: parse one text, print it canonically.

use crate::diag::{Diagnostic, Diagnostics};
use crate::hir::Program;
use crate::ir::Ir;
use crate::manifest::Manifest;
use crate::resolve::load::{self, FileSystem, LoadError, Loaded};
use crate::source::{SourceId, SourceMap};
use crate::{backend, fmt, ir, resolve, syntax, typeck};
use std::path::{Path, PathBuf};

/// The outcome of checking a program.
pub struct Checked {
    pub sources: SourceMap,
    /// The checked program, when there were no errors.
    pub program: Option<Program>,
    /// The program lowered to the IR, when there were no errors (but
    /// failed expectations).
    pub ir: Option<Ir>,
    /// What the IR emits (checked for name clashes), when there were no errors.
    pub manifests: Option<Vec<Manifest>>,
    /// Every `expect` line judged over the emitted objects (empty when
    /// the program did not get that far).
    pub expectations: Vec<crate::verify::expect::Outcome>,
    pub diagnostics: Diagnostics,
    pub file_count: usize,
}

/// Checks the program at `path` (a `.ztp` file or a directory), through
/// the IR-level checks.
pub fn check(fs: &dyn FileSystem, path: &Path) -> Result<Checked, LoadError> {
    let (root, stack) = program_root(fs, path);
    Ok(check_loaded(load::load(fs, path)?, &root, &stack))
}

/// Checks one in-memory text; imports are resolved from `dir`.
pub fn check_text(fs: &dyn FileSystem, name: &str, text: String, dir: &Path) -> Result<Checked, LoadError> {
    Ok(check_loaded(load::load_text(fs, name, text, dir)?, dir, "ztp"))
}

fn check_loaded(loaded: Loaded, root: &Path, stack: &str) -> Checked {
    let mut diagnostics = Diagnostics::new();
    diagnostics.extend(loaded.diagnostics.iter().cloned());
    let file_count = loaded.files.iter().filter(|f| !f.is_stdlib).count();
    let parsed_all = loaded.files.iter().all(|f| f.ast.is_some());
    let mut program = None;
    let mut ir_out = None;
    let mut manifests = None;
    let mut expectations = Vec::new();
    if parsed_all {
        let (p, ds) = resolve::resolve(&loaded);
        diagnostics.extend(ds);
        // The program rules run on whatever resolved, so their errors show
        // beside name errors; the IR needs a program without errors.
        diagnostics.extend(typeck::check(&p));
        if !diagnostics.has_errors() {
            let (ir, ds) = ir::lower(&p, &loaded.sources, root, stack);
            diagnostics.extend(ds);
            let emitted = ir.as_ref().map(backend::emit);
            if let Some(ms) = &emitted {
                diagnostics.extend(name_clashes(ms, &loaded));
                if let Some(ir) = &ir
                    && !diagnostics.has_errors()
                {
                    expectations = crate::verify::expect::run(ir, ms);
                    diagnostics.extend(expectations.iter().filter_map(crate::verify::expect::diagnostic));
                }
            }
            if !diagnostics.has_errors() {
                program = Some(p);
                ir_out = ir;
                manifests = emitted;
            } else if diagnostics
                .iter()
                .all(|d| d.severity != crate::diag::Severity::Error || d.code == crate::diag::codes::EXPECTATION_FAILED)
            {
                // Only expectations failed: the program stands (for
                // `explain` and `test`), but nothing is built from it.
                program = Some(p);
                ir_out = ir;
            }
        }
    }
    Checked { sources: loaded.sources, program, ir: ir_out, manifests, expectations, diagnostics, file_count }
}

/// Objects that would share kind, namespace and name (a safety net under
/// the naming scheme: one would silently replace the other).
fn name_clashes(ms: &[Manifest], loaded: &Loaded) -> Vec<Diagnostic> {
    let mut seen: std::collections::BTreeMap<(String, Option<String>, String), &Manifest> = Default::default();
    let mut out = Vec::new();
    let at = loaded
        .files
        .iter()
        .find(|f| !f.is_stdlib)
        .map_or(crate::source::Span::default(), |f| crate::source::Span::new(f.id, 0, 0));
    let origin = |m: &Manifest| m.annotations.get(backend::SOURCE).cloned().unwrap_or_default();
    for m in ms {
        let key = (m.group_kind(), m.namespace.clone(), m.name.clone());
        match seen.get(&key) {
            Some(first) => out.push(
                Diagnostic::new(
                    crate::diag::codes::NAME_CLASH,
                    format!("two objects would be named {}: from {} and from {}", m.id(), origin(first), origin(m)),
                    at,
                    "in this program",
                )
                .with_help("rename one of the declarations at those lines"),
            ),
            None => {
                seen.insert(key, m);
            }
        }
    }
    out
}

/// The outcome of building a program: the checked program's manifests,
/// when there were no errors.
pub struct Built {
    pub checked: Checked,
    pub manifests: Option<Vec<Manifest>>,
}

/// The directory a program's origins are relative to, and the default
/// stack name: a directory's own name; for a file, its stem (`main.ztp`
/// takes its directory's name).
pub fn program_root(fs: &dyn FileSystem, path: &Path) -> (PathBuf, String) {
    let is_dir = fs.is_dir(path);
    let root = if is_dir { path.to_path_buf() } else { path.parent().map(Path::to_path_buf).unwrap_or_default() };
    let root = load::normalize(&root);
    let named = |p: &Path| {
        let c = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        c.file_name().map(|n| n.to_string_lossy().into_owned())
    };
    let raw = if is_dir {
        named(path)
    } else {
        match path.file_stem().map(|s| s.to_string_lossy().into_owned()) {
            Some(stem) if stem != "main" => Some(stem),
            _ => named(&if root.as_os_str().is_empty() { PathBuf::from(".") } else { root.clone() }),
        }
    };
    (root, stack_name(raw.as_deref().unwrap_or("ztp")))
}

/// A DNS-1123 label from any name.
fn stack_name(raw: &str) -> String {
    let s: String = raw.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let s: String = s.trim_matches('-').chars().take(40).collect();
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() { "ztp".into() } else { s }
}

/// Checks and emits the program at `path`. `stack` overrides the stack
/// name (else the program's `cluster { stack }`, else the default).
pub fn build(fs: &dyn FileSystem, path: &Path, stack: Option<&str>) -> Result<Built, LoadError> {
    let mut checked = check(fs, path)?;
    let manifests = match (stack, checked.ir.as_mut()) {
        // Another stack name changes names and labels: emit again.
        (Some(s), Some(ir)) if ir.stack != s && checked.manifests.is_some() => {
            ir.stack = s.to_string();
            Some(backend::emit(ir))
        }
        _ => checked.manifests.take(),
    };
    Ok(Built { checked, manifests })
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
