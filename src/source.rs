//! Source files and byte spans.
//!
//! Owns the [`SourceMap`] (every file of a program, by [`SourceId`]) and the
//! [`Span`] type that every AST node, diagnostic and IR item carries. Spans are
//! byte offsets; line and column numbers are computed only when something is
//! shown to a person (rendering, JSON diagnostics, provenance annotations).

use std::fmt;
use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct SourceId(pub u32);

/// A half-open byte range `lo..hi` in one source file.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub source: SourceId,
    pub lo: usize,
    pub hi: usize,
}

impl Span {
    pub fn new(source: SourceId, lo: usize, hi: usize) -> Self {
        Span { source, lo, hi: hi.max(lo) }
    }

    /// The smallest span covering both (same file assumed; `self`'s file wins).
    pub fn to(self, other: Span) -> Span {
        Span::new(self.source, self.lo.min(other.lo), self.hi.max(other.hi))
    }

    /// An empty span at this span's start.
    pub fn start(self) -> Span {
        Span::new(self.source, self.lo, self.lo)
    }

    pub fn contains(self, other: Span) -> bool {
        self.source == other.source && self.lo <= other.lo && other.hi <= self.hi
    }
}

/// Spans print as `@lo..hi` so that a span-free view of a tree (used to compare
/// ASTs before and after formatting) only has to drop these markers.
impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}..{}", self.lo, self.hi)
    }
}

/// Where a source file came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file on disk (path as given or as resolved from an import).
    File(PathBuf),
    /// A stdlib module compiled into the binary (`std/<name>`).
    Stdlib(String),
    /// Standard input.
    Stdin,
}

/// One source file: its name for display, its origin and its text.
#[derive(Debug)]
pub struct SourceFile {
    pub name: String,
    pub origin: Origin,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    fn new(name: String, origin: Origin, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile { name, origin, text, line_starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let col = self.text.get(start..offset).map(|s| s.chars().count()).unwrap_or(offset - start);
        (line + 1, col + 1)
    }
}

/// Every file of one program, in the order they were loaded.
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, name: impl Into<String>, origin: Origin, text: impl Into<String>) -> SourceId {
        let id = SourceId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile::new(name.into(), origin, text.into()));
        id
    }

    pub fn get(&self, id: SourceId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn text(&self, id: SourceId) -> &str {
        self.get(id).map(|f| f.text.as_str()).unwrap_or("")
    }

    pub fn name(&self, id: SourceId) -> &str {
        self.get(id).map(|f| f.name.as_str()).unwrap_or("<unknown>")
    }

    pub fn find_file(&self, path: &Path) -> Option<SourceId> {
        self.iter().find(|(_, f)| matches!(&f.origin, Origin::File(p) if p == path)).map(|(id, _)| id)
    }

    pub fn find_stdlib(&self, module: &str) -> Option<SourceId> {
        self.iter().find(|(_, f)| matches!(&f.origin, Origin::Stdlib(m) if m == module)).map(|(id, _)| id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (SourceId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (SourceId(u32::try_from(i).unwrap_or(u32::MAX)), f))
    }

    /// `file:line:col` of a span's start, as shown in annotations and messages.
    pub fn location(&self, span: Span) -> String {
        match self.get(span.source) {
            Some(f) => {
                let (l, c) = f.line_col(span.lo);
                format!("{}:{}:{}", f.name, l, c)
            }
            None => "<unknown>".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars_from_one() {
        let mut map = SourceMap::new();
        let id = map.add("a.ztp", Origin::Stdin, "ab\nçd\n");
        let f = map.get(id).unwrap();
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (2, 1));
        assert_eq!(f.line_col(5), (2, 2)); // after the two-byte 'ç'
        assert_eq!(f.line_col(99), (3, 1));
    }
}
