//! Open documents: their text as the editor has it, kept in step with
//! full and incremental changes, and the conversion between LSP positions
//! (lines and UTF-16 code units) and the byte offsets every span uses.
//!
//! Positions from the client are never trusted: a line past the end is
//! the end of the text, a character past the end of its line is the line's
//! end, and one inside a surrogate pair is the character's start. Nothing
//! here can panic on what a client sends.

use lsp_types::{Position, Range, TextDocumentContentChangeEvent, Uri};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where each line of a text starts, for converting positions.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The byte offset of a position, clamped into the text.
    pub fn offset(&self, text: &str, p: Position) -> usize {
        let Some(&start) = self.starts.get(p.line as usize) else { return text.len() };
        let end = self.starts.get(p.line as usize + 1).map_or(text.len(), |e| e.saturating_sub(1));
        let line = text.get(start..end.max(start)).unwrap_or("");
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut units = 0u32;
        for (i, c) in line.char_indices() {
            let next = units + c.len_utf16() as u32;
            if next > p.character {
                return start + i;
            }
            units = next;
        }
        start + line.len()
    }

    /// The position of a byte offset (clamped, and moved back to a
    /// character boundary).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let character = text.get(start..offset).map_or(0, |s| s.encode_utf16().count());
        Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            character: u32::try_from(character).unwrap_or(u32::MAX),
        }
    }

    pub fn range(&self, text: &str, lo: usize, hi: usize) -> Range {
        Range { start: self.position(text, lo), end: self.position(text, hi) }
    }
}

/// One open document.
#[derive(Clone, Debug)]
pub struct Document {
    pub uri: Uri,
    /// The file it is, for `file:` URIs.
    pub path: Option<PathBuf>,
    pub text: String,
    pub version: i32,
    pub lines: LineIndex,
}

impl Document {
    pub fn new(uri: Uri, text: String, version: i32) -> Document {
        let path = super::uri::to_path(&uri);
        let lines = LineIndex::new(&text);
        Document { uri, path, text, version, lines }
    }

    /// Applies changes in order: a change without a range replaces the
    /// text; one with a range replaces that range (clamped).
    pub fn apply(&mut self, changes: Vec<TextDocumentContentChangeEvent>, version: i32) {
        for c in changes {
            match c.range {
                None => self.text = c.text,
                Some(r) => {
                    let lo = self.lines.offset(&self.text, r.start);
                    let hi = self.lines.offset(&self.text, r.end).max(lo);
                    self.text.replace_range(lo..hi, &c.text);
                }
            }
            self.lines = LineIndex::new(&self.text);
        }
        self.version = version;
    }

    pub fn offset(&self, p: Position) -> usize {
        self.lines.offset(&self.text, p)
    }
}

/// Every open document, by URI.
#[derive(Default)]
pub struct Documents {
    docs: BTreeMap<String, Document>,
}

impl Documents {
    pub fn open(&mut self, doc: Document) {
        self.docs.insert(doc.uri.as_str().to_string(), doc);
    }

    pub fn close(&mut self, uri: &Uri) -> Option<Document> {
        self.docs.remove(uri.as_str())
    }

    pub fn get(&self, uri: &Uri) -> Option<&Document> {
        self.docs.get(uri.as_str())
    }

    pub fn get_mut(&mut self, uri: &Uri) -> Option<&mut Document> {
        self.docs.get_mut(uri.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Document> {
        self.docs.values()
    }

    /// The text of every open file, by path: what the overlay serves.
    pub fn texts(&self) -> BTreeMap<PathBuf, String> {
        self.docs.values().filter_map(|d| Some((d.path.clone()?, d.text.clone()))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn utf16_positions_round_trip() {
        let text = "a😀b\r\nçd\n";
        let ix = LineIndex::new(text);
        assert_eq!(ix.offset(text, pos(0, 0)), 0);
        assert_eq!(ix.offset(text, pos(0, 1)), 1);
        assert_eq!(ix.offset(text, pos(0, 2)), 1, "inside the surrogate pair");
        assert_eq!(ix.offset(text, pos(0, 3)), 5);
        assert_eq!(ix.offset(text, pos(0, 99)), 6, "before the \\r\\n");
        assert_eq!(ix.offset(text, pos(1, 1)), 10);
        assert_eq!(ix.offset(text, pos(9, 0)), text.len());
        assert_eq!(ix.position(text, 5), pos(0, 3));
        assert_eq!(ix.position(text, 10), pos(1, 1));
        assert_eq!(ix.position(text, 3), pos(0, 1), "inside the emoji");
        assert_eq!(ix.position(text, 999), pos(2, 0));
    }

    #[test]
    fn incremental_changes_clamp() {
        let uri: Uri = "file:///x.ztp".parse().unwrap();
        let mut d = Document::new(uri, "ab\ncd".into(), 1);
        let change = |l0, c0, l1, c1, t: &str| TextDocumentContentChangeEvent {
            range: Some(Range { start: pos(l0, c0), end: pos(l1, c1) }),
            range_length: None,
            text: t.into(),
        };
        d.apply(vec![change(1, 0, 1, 1, "X"), change(0, 1, 0, 1, "é")], 2);
        assert_eq!(d.text, "aéb\nXd");
        d.apply(vec![change(5, 0, 0, 0, "!")], 3);
        assert_eq!(d.text, "aéb\nXd!");
        assert_eq!(d.version, 3);
    }
}
