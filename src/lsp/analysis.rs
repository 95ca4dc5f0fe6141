//! Running the compiler on what the editor shows: unsaved buffers laid
//! over the file system, one program per directory of an open file (as
//! `ztp check DIR` reads it), and the diagnostics turned into LSP's.
//!
//! Each program keeps a parse cache, so a change re-parses only the file
//! that changed. The check runs in two halves ([`crate::driver::analyze`]
//! and [`crate::driver::Analysis::finish`]) so the front end's diagnostics
//! are published before the program is emitted. Nothing here decides what
//! is an error: the diagnostics are the driver's, byte for byte.

use super::documents::LineIndex;
use super::embedded::Embedded;
use super::uri;
use crate::diag::{Diagnostic, Severity};
use crate::driver::{self, Analysis};
use crate::resolve::load::{FileSystem, ParseCache, RealFs, normalize};
use crate::source::{Origin, SourceId, SourceMap, Span};
use lsp_types as lsp;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

/// The real file system with open documents laid over it: an open file
/// reads as its buffer, and a new unsaved file is part of its directory.
pub struct OverlayFs<'a> {
    pub open: &'a BTreeMap<PathBuf, String>,
}

impl FileSystem for OverlayFs<'_> {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.open.get(&normalize(path)) {
            Some(text) => Ok(text.as_bytes().to_vec()),
            None => RealFs.read(path),
        }
    }

    fn is_dir(&self, path: &Path) -> bool {
        let p = normalize(path);
        RealFs.is_dir(path) || self.open.keys().any(|k| k.parent() == Some(p.as_path()))
    }

    fn ztp_files(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let d = normalize(dir);
        let mut files: BTreeSet<PathBuf> = match RealFs.ztp_files(dir) {
            Ok(v) => v.into_iter().map(|p| normalize(&p)).collect(),
            Err(e) if !self.open.keys().any(|k| k.parent() == Some(d.as_path())) => return Err(e),
            Err(_) => BTreeSet::new(),
        };
        files.extend(
            self.open
                .keys()
                .filter(|k| k.parent() == Some(d.as_path()) && k.extension().is_some_and(|e| e == "ztp"))
                .cloned(),
        );
        Ok(files.into_iter().collect())
    }
}

/// One program: a directory, its cache, its latest analysis and what was
/// last published for its files.
#[derive(Default)]
pub struct Program {
    pub cache: ParseCache,
    pub analysis: Option<Analysis>,
    /// Why the directory could not be loaded, if it could not.
    pub load_error: Option<String>,
    /// URI → the diagnostics last published.
    pub published: BTreeMap<String, Vec<lsp::Diagnostic>>,
    /// The emitted objects as JSON, made for the first hover that judges a
    /// flow; each such hover indexes them into a reachability model.
    pub model: Option<Vec<serde_json::Value>>,
}

impl Program {
    /// Runs the first half of the check. Returns what the previous
    /// analysis leaves behind (its trees go back to the cache first): a big
    /// program's objects take a while to free, and the caller frees them
    /// once the diagnostics are out, not before.
    pub fn analyze(&mut self, dir: &Path, open: &BTreeMap<PathBuf, String>) -> Leftover {
        let old = self.analysis.take().map(|mut a| {
            self.cache.restore(std::mem::take(&mut a.files), &a.checked.sources);
            a
        });
        let leftover = Leftover { _analysis: old, _model: self.model.take() };
        match driver::analyze(&OverlayFs { open }, dir, &mut self.cache) {
            Ok(a) => {
                self.analysis = Some(a);
                self.load_error = None;
            }
            Err(e) => {
                self.analysis = None;
                self.load_error = Some(e.to_string());
            }
        }
        leftover
    }

    /// Whether `path` is one of the program's files.
    pub fn has_file(&self, path: &Path) -> bool {
        self.analysis.as_ref().is_some_and(|a| a.checked.sources.find_file(path).is_some())
    }
}

/// A replaced analysis and its model, kept only to be dropped later.
pub struct Leftover {
    _analysis: Option<Analysis>,
    _model: Option<Vec<serde_json::Value>>,
}

/// How spans become LSP locations: through each file's line index.
pub struct Locator<'a> {
    pub sources: &'a SourceMap,
    pub embedded: Option<&'a Embedded>,
    lines: std::cell::RefCell<BTreeMap<SourceId, LineIndex>>,
}

impl<'a> Locator<'a> {
    pub fn new(sources: &'a SourceMap, embedded: Option<&'a Embedded>) -> Self {
        Locator { sources, embedded, lines: Default::default() }
    }

    /// The URI of a source: its file, or the copy of a stdlib module.
    pub fn uri(&self, id: SourceId) -> Option<lsp::Uri> {
        match &self.sources.get(id)?.origin {
            Origin::File(p) => uri::from_path(p),
            Origin::Stdlib(m) => uri::from_path(&self.embedded?.stdlib(m)),
            Origin::Stdin => None,
        }
    }

    pub fn range(&self, span: Span) -> lsp::Range {
        let text = self.sources.text(span.source);
        let mut lines = self.lines.borrow_mut();
        let ix = lines.entry(span.source).or_insert_with(|| LineIndex::new(text));
        ix.range(text, span.lo, span.hi)
    }

    pub fn location(&self, span: Span) -> Option<lsp::Location> {
        Some(lsp::Location { uri: self.uri(span.source)?, range: self.range(span) })
    }
}

/// One diagnostic as LSP shows it: the code with a link to its page, the
/// help and notes after the message, secondary labels as related
/// information.
pub fn to_lsp(d: &Diagnostic, at: &Locator<'_>) -> lsp::Diagnostic {
    let mut message = d.message.clone();
    if !d.primary.message.is_empty() {
        message.push_str(&format!(": {}", d.primary.message));
    }
    for h in &d.help {
        message.push_str(&format!("\nhelp: {h}"));
    }
    for n in &d.notes {
        message.push_str(&format!("\nnote: {n}"));
    }
    let related: Vec<lsp::DiagnosticRelatedInformation> = d
        .secondary
        .iter()
        .filter_map(|l| {
            Some(lsp::DiagnosticRelatedInformation { location: at.location(l.span)?, message: l.message.clone() })
        })
        .collect();
    let code_description = at
        .embedded
        .and_then(|e| uri::from_path(&e.code_page(d.code.as_str())))
        .map(|href| lsp::CodeDescription { href });
    lsp::Diagnostic {
        range: at.range(d.primary.span),
        severity: Some(match d.severity {
            Severity::Error => lsp::DiagnosticSeverity::ERROR,
            Severity::Warning => lsp::DiagnosticSeverity::WARNING,
        }),
        code: Some(lsp::NumberOrString::String(d.code.as_str().to_string())),
        code_description,
        source: Some("ztp".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: None,
        data: None,
    }
}

/// The diagnostics of an analysis by file URI, with every file of the
/// program present (empty when it has none). Stdlib files are left out.
pub fn by_file(a: &Analysis, embedded: Option<&Embedded>) -> BTreeMap<String, Vec<lsp::Diagnostic>> {
    let sources = &a.checked.sources;
    let at = Locator::new(sources, embedded);
    let mut out: BTreeMap<String, Vec<lsp::Diagnostic>> = BTreeMap::new();
    let mut uris: BTreeMap<SourceId, Option<String>> = BTreeMap::new();
    for (id, f) in sources.iter() {
        if let Origin::File(p) = &f.origin {
            let u = uri::from_path(p).map(|u| u.as_str().to_string());
            if let Some(u) = &u {
                out.entry(u.clone()).or_default();
            }
            uris.insert(id, u);
        }
    }
    for d in a.checked.diagnostics.sorted() {
        if let Some(Some(u)) = uris.get(&d.primary.span.source) {
            out.entry(u.clone()).or_default().push(to_lsp(&d, &at));
        }
    }
    out
}
