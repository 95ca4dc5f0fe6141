//! Runs the stages in order and collects their diagnostics.
//!
//! `check`: load (files, imports) → parse → resolve → typeck → IR checks →
//! emit → `expect` lines judged over the emitted objects.
//! Resolution is skipped when any file has syntax errors, so that a broken
//! declaration does not cascade into unknown-name errors elsewhere; the
//! program rules run on whatever resolved; lowering needs no errors. `format_text` is the
//! formatter's entry: parse one text, print it canonically. `analyze` is an
//! editor's: the same check in two halves (through lowering, then emitting),
//! keeping the parsed files, the program with errors and the name index.

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
    Ok(check_loaded(load::load(fs, path)?, &root, &stack, true))
}

/// [`check`] without judging the `expect` lines (`expectations` stays
/// empty), for the commands that ask their own questions of the program:
/// `explain`, `diff` and `graph`.
pub fn check_unjudged(fs: &dyn FileSystem, path: &Path) -> Result<Checked, LoadError> {
    let (root, stack) = program_root(fs, path);
    Ok(check_loaded(load::load(fs, path)?, &root, &stack, false))
}

/// Checks one in-memory text; imports are resolved from `dir`.
pub fn check_text(fs: &dyn FileSystem, name: &str, text: String, dir: &Path) -> Result<Checked, LoadError> {
    Ok(check_loaded(load::load_text(fs, name, text, dir)?, dir, "ztp", true))
}

fn check_loaded(mut loaded: Loaded, root: &Path, stack: &str, judge: bool) -> Checked {
    let (mut stage, index) = front(&loaded, root, stack);
    stage.judge = judge;
    // The trees and the name index are not needed past the front half:
    // freeing them before emitting lowers the peak. They are freed on
    // another thread, while the back half runs.
    crate::par::drop_elsewhere((std::mem::take(&mut loaded.files), index));
    let (program, ir, manifests, expectations) = back(&mut stage);
    Checked {
        sources: loaded.sources,
        program,
        ir,
        manifests,
        expectations,
        diagnostics: stage.diagnostics,
        file_count: stage.file_count,
    }
}

/// A program between the two halves of a check: resolved, checked and
/// lowered, not yet emitted.
struct Stage {
    diagnostics: Diagnostics,
    file_count: usize,
    /// The resolved program; `None` when a file did not parse.
    program: Option<Program>,
    /// Whether the program got as far as lowering (no errors before it).
    lowered: bool,
    ir: Option<Ir>,
    /// Where program-wide diagnostics (name clashes) point.
    clash_at: crate::source::Span,
    /// Whether the `expect` lines are judged.
    judge: bool,
}

/// Load → resolve → typeck → lower.
fn front(loaded: &Loaded, root: &Path, stack: &str) -> (Stage, Option<resolve::index::Index>) {
    let mut diagnostics = Diagnostics::new();
    diagnostics.extend(loaded.diagnostics.iter().cloned());
    let file_count = loaded.files.iter().filter(|f| !f.is_stdlib).count();
    let parsed_all = loaded.files.iter().all(|f| f.ast.is_some());
    let clash_at = loaded
        .files
        .iter()
        .find(|f| !f.is_stdlib)
        .map_or(crate::source::Span::default(), |f| crate::source::Span::new(f.id, 0, 0));
    let mut stage = Stage { diagnostics, file_count, program: None, lowered: false, ir: None, clash_at, judge: true };
    if !parsed_all {
        return (stage, None);
    }
    let (p, ds, index) = resolve::resolve_indexed(loaded);
    stage.diagnostics.extend(ds);
    // The program rules run on whatever resolved, so their errors show
    // beside name errors; the IR needs a program without errors. When
    // names resolved, lowering starts beside the program rules on a second
    // thread, and is thrown away if they find an error.
    let lower = || ir::lower(&p, &loaded.sources, root, stack);
    let (rules, mut lowered) = if stage.diagnostics.has_errors() {
        (typeck::check(&p), None)
    } else {
        std::thread::scope(|scope| {
            let lowering = scope.spawn(lower);
            let rules = typeck::check(&p);
            (rules, lowering.join().ok())
        })
    };
    stage.diagnostics.extend(rules);
    if !stage.diagnostics.has_errors() {
        let (ir, ds) = lowered.take().unwrap_or_else(lower);
        stage.diagnostics.extend(ds);
        stage.ir = ir;
        stage.lowered = true;
    }
    stage.program = Some(p);
    (stage, Some(index))
}

/// What the second half keeps: the program, its IR and its objects (each
/// only as far as the errors allow) and the judged `expect` lines.
type Kept = (Option<Program>, Option<Ir>, Option<Vec<Manifest>>, Vec<crate::verify::expect::Outcome>);

/// Emit → name clashes → `expect` lines; decides what the check keeps.
fn back(stage: &mut Stage) -> Kept {
    let mut expectations = Vec::new();
    if !stage.lowered {
        return (None, None, None, expectations);
    }
    let diagnostics = &mut stage.diagnostics;
    let ir = stage.ir.take();
    let emitted = ir.as_ref().map(backend::emit);
    if let Some(ms) = &emitted {
        diagnostics.extend(name_clashes(ms, stage.clash_at));
        if let Some(ir) = &ir
            && stage.judge
            && !diagnostics.has_errors()
        {
            expectations = crate::verify::expect::run(ir, ms);
            diagnostics.extend(expectations.iter().filter_map(crate::verify::expect::diagnostic));
        }
    }
    if !diagnostics.has_errors() {
        (stage.program.take(), ir, emitted, expectations)
    } else if diagnostics
        .iter()
        .all(|d| d.severity != crate::diag::Severity::Error || d.code == crate::diag::codes::EXPECTATION_FAILED)
    {
        // Only expectations failed: the program stands (for
        // `explain` and `test`), but nothing is built from it.
        (stage.program.take(), ir, None, expectations)
    } else {
        (None, None, None, expectations)
    }
}

/// A program as an editor sees it: checked as [`check`] checks it, with
/// what navigation needs kept beside — the parsed files, the resolved
/// program even when it has errors, the imports and where each name is
/// declared and used. Built in two halves ([`analyze`], then
/// [`Analysis::finish`]), so that an editor can show the front end's
/// diagnostics before the program is emitted.
pub struct Analysis {
    /// The check's outcome; complete once [`Analysis::finish`] has run.
    pub checked: Checked,
    pub files: Vec<load::LoadedFile>,
    pub imports: Vec<(SourceId, crate::source::Span, SourceId)>,
    /// `None` when a file did not parse.
    pub index: Option<resolve::index::Index>,
    /// The resolved program when `checked` does not keep it.
    resolved: Option<Program>,
    stage: Option<Stage>,
}

impl Analysis {
    /// The resolved program, with or without errors (`None` when a file
    /// did not parse).
    pub fn program(&self) -> Option<&Program> {
        self.checked
            .program
            .as_ref()
            .or(self.resolved.as_ref())
            .or_else(|| self.stage.as_ref().and_then(|s| s.program.as_ref()))
    }

    /// The IR, once lowered (before [`Analysis::finish`] too).
    pub fn ir(&self) -> Option<&Ir> {
        self.checked.ir.as_ref().or_else(|| self.stage.as_ref().and_then(|s| s.ir.as_ref()))
    }

    /// Whether the second half still has to run (it emits the objects and
    /// judges the `expect` lines, and may add diagnostics).
    pub fn unfinished(&self) -> bool {
        self.stage.as_ref().is_some_and(|s| s.lowered)
    }

    /// Runs the second half: after it, `checked` is what [`check`] returns.
    pub fn finish(&mut self) {
        let Some(mut stage) = self.stage.take() else { return };
        let (program, ir, manifests, expectations) = back(&mut stage);
        if program.is_none() {
            self.resolved = stage.program.take();
        }
        self.checked.program = program;
        self.checked.ir = ir;
        self.checked.manifests = manifests;
        self.checked.expectations = expectations;
        self.checked.diagnostics = stage.diagnostics;
    }
}

/// The first half of checking the program at `path` for an editor:
/// loaded (parsing only what changed since the last load with `cache`),
/// resolved, checked and lowered. `checked.diagnostics` holds the front
/// end's diagnostics; [`Analysis::finish`] completes them.
pub fn analyze(fs: &dyn FileSystem, path: &Path, cache: &mut load::ParseCache) -> Result<Analysis, LoadError> {
    let (root, stack) = program_root(fs, path);
    let loaded = load::load_cached(fs, path, cache)?;
    let (stage, index) = front(&loaded, &root, &stack);
    let checked = Checked {
        sources: loaded.sources,
        program: None,
        ir: None,
        manifests: None,
        expectations: Vec::new(),
        diagnostics: stage.diagnostics.clone(),
        file_count: stage.file_count,
    };
    Ok(Analysis { checked, files: loaded.files, imports: loaded.imports, index, resolved: None, stage: Some(stage) })
}

/// Objects that would share kind, namespace and name (a safety net under
/// the naming scheme: one would silently replace the other).
fn name_clashes(ms: &[Manifest], at: crate::source::Span) -> Vec<Diagnostic> {
    let mut seen: std::collections::HashMap<(&str, &str, Option<&str>, &str), &Manifest> =
        std::collections::HashMap::with_capacity(ms.len());
    let mut out = Vec::new();
    let origin = |m: &Manifest| m.annotations.get(backend::SOURCE).cloned().unwrap_or_default();
    for m in ms {
        let key = (m.group(), m.kind, m.namespace.as_deref(), m.name.as_str());
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
    formatted(sources, syntax::parse(id, text), text)
}

/// Formats many texts (name, text) on every core, as [`format_text`] does
/// each; the results in the inputs' order.
pub fn format_texts(inputs: &[(String, String)]) -> Vec<Formatted> {
    let mut maps = Vec::with_capacity(inputs.len());
    let mut texts = Vec::with_capacity(inputs.len());
    for (name, text) in inputs {
        let mut sources = SourceMap::new();
        texts.push((sources.add(name.as_str(), crate::source::Origin::Stdin, text.as_str()), text.as_str()));
        maps.push(sources);
    }
    let printed = syntax::parse_each(&texts, true, |i, parsed| {
        let text = texts.get(i).map_or("", |(_, t)| *t);
        let errors: Vec<Diagnostic> = parsed.diagnostics.into_iter().filter(Diagnostic::is_error).collect();
        match parsed.file {
            Some(file) if errors.is_empty() => Ok(fmt::format(&file, &parsed.trivia, text)),
            _ => Err(errors),
        }
    });
    maps.into_iter()
        .zip(printed)
        .map(|(sources, printed)| match printed {
            Ok(out) => Formatted::Ok(out),
            Err(errors) => Formatted::Invalid(sources, errors),
        })
        .collect()
}

fn formatted(sources: SourceMap, parsed: syntax::Parsed, text: &str) -> Formatted {
    let errors: Vec<Diagnostic> = parsed.diagnostics.into_iter().filter(Diagnostic::is_error).collect();
    match parsed.file {
        Some(file) if errors.is_empty() => Formatted::Ok(fmt::format(&file, &parsed.trivia, text)),
        _ => Formatted::Invalid(sources, errors),
    }
}
