//! The formatter: AST + trivia → the one canonical text of a file.
//!
//! Style: two-space indent; one statement per line; a block whose body holds
//! only attributes, no comments, and fits in [`WIDTH`] columns is written on
//! one line (`port http { number = 8080, protocol = http }`); lists and maps
//! likewise, else one element per line with trailing commas; `except` with
//! one target has no brackets; runs of blank lines become one; no blank line
//! opens or closes a block. Comments are taken from the trivia table in
//! source order: each is printed before the first node that starts after it,
//! or at the end of its line when it trails a statement, so every comment is
//! printed exactly once. Only layout changes: literals are printed as
//! written, so formatting never changes what a program means.

use crate::ast::*;

/// The line width that decides between one-line and multi-line forms.
pub const WIDTH: usize = 100;
const INDENT: &str = "  ";

/// Formats a parsed file. `text` is the source it was parsed from.
pub fn format(file: &File, trivia: &Trivia, text: &str) -> String {
    let mut p = Printer {
        out: String::new(),
        text,
        comments: &trivia.comments,
        blank_lines: &trivia.blank_lines,
        next: 0,
        depth: 0,
        last_end: 0,
    };
    p.stmts(&file.stmts);
    p.flush_comments(usize::MAX, false);
    let mut out = p.out.trim_end().to_string();
    out.push('\n');
    if out.trim().is_empty() {
        return String::new();
    }
    out
}

struct Printer<'a> {
    out: String,
    text: &'a str,
    comments: &'a [Comment],
    /// Start offsets of the source's blank lines.
    blank_lines: &'a [usize],
    /// Index of the first comment not yet printed.
    next: usize,
    depth: usize,
    /// Source offset where the last printed item ended (for blank lines).
    last_end: usize,
}

impl Printer<'_> {
    fn column(&self) -> usize {
        self.out.rsplit('\n').next().map_or(0, |l| l.chars().count())
    }

    fn newline(&mut self) {
        while self.out.ends_with(' ') {
            self.out.pop();
        }
        self.out.push('\n');
        for _ in 0..self.depth {
            self.out.push_str(INDENT);
        }
    }

    /// Whether the source has a blank line between the last printed item and `lo`.
    fn blank_before(&self, lo: usize) -> bool {
        let from = self.last_end.min(lo);
        let i = self.blank_lines.partition_point(|&b| b <= from);
        self.blank_lines.get(i).is_some_and(|&b| b < lo)
    }

    /// Starts a new line for an item at source offset `lo`, keeping one
    /// blank line where the source had any (never first in a body).
    fn item_line(&mut self, lo: usize, first: bool) {
        if self.out.is_empty() {
            return;
        }
        if !first && self.blank_before(lo) {
            self.out.truncate(self.out.trim_end_matches(' ').len());
            self.out.push('\n');
        }
        self.newline();
    }

    fn has_comments(&self, lo: usize, hi: usize) -> bool {
        // Comments are in source order.
        let rest = self.comments.get(self.next..).unwrap_or(&[]);
        let i = rest.partition_point(|c| c.span.lo < lo);
        rest.get(i).is_some_and(|c| c.span.lo < hi)
    }

    /// Prints, each on its own line, the comments that start before `pos`.
    /// Returns whether anything was printed.
    fn flush_comments(&mut self, pos: usize, mut first: bool) -> bool {
        let mut printed = false;
        while let Some(c) = self.comments.get(self.next) {
            if c.span.lo >= pos {
                break;
            }
            self.item_line(c.span.lo, first && !printed);
            first = false;
            self.out.push_str(&c.text);
            self.last_end = c.span.hi;
            self.next += 1;
            printed = true;
        }
        printed
    }

    /// A comment right after `hi` on the same line (only blanks and commas
    /// between), printed at the end of the current line.
    fn trailing_comment(&mut self, hi: usize) {
        if let Some(c) = self.comments.get(self.next) {
            let same_line =
                self.text.get(hi..c.span.lo).is_some_and(|g| g.chars().all(|ch| matches!(ch, ' ' | '\t' | ',')));
            if c.span.lo >= hi && same_line && !c.own_line {
                self.out.push(' ');
                self.out.push_str(&c.text);
                self.last_end = c.span.hi;
                self.next += 1;
            }
        }
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        for (i, s) in stmts.iter().enumerate() {
            let span = s.span();
            let first = i == 0;
            let had_comments = self.flush_comments(span.lo, first);
            self.item_line(span.lo, first && !had_comments);
            self.stmt(s);
            // Comments inside the statement that no nested node took (e.g.
            // between `allow` and `->`) follow it on their own lines; then
            // a comment that trailed it cannot share a line with them.
            let moved = self.flush_comments(span.hi, false);
            self.last_end = self.last_end.max(span.hi);
            if !moved {
                self.trailing_comment(span.hi);
            }
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Import(i) => {
                self.out.push_str("import ");
                self.out.push_str(&i.path.raw);
            }
            Stmt::Let(l) => {
                self.out.push_str("let ");
                self.out.push_str(&l.name.text);
                self.out.push_str(" = ");
                self.value(&l.value);
            }
            Stmt::Attr(a) => self.attr(a),
            Stmt::Block(b) => {
                self.out.push_str(&b.kind.text);
                if let Some(n) = &b.name {
                    self.out.push(' ');
                    self.out.push_str(&n.text);
                }
                self.out.push(' ');
                self.body(&b.body);
            }
            Stmt::Flow(f) => {
                self.out.push_str(f.kind.keyword());
                self.out.push(' ');
                self.endpoint(&f.src);
                self.out.push_str(" -> ");
                self.endpoint(&f.dst);
                if let Some(b) = &f.body {
                    self.out.push(' ');
                    self.body(b);
                }
            }
            Stmt::Route(r) => {
                self.out.push_str("route ");
                self.out.push_str(&r.path.raw);
                self.out.push_str(" -> ");
                self.out.push_str(&target(&r.target));
                if let Some(p) = &r.port {
                    self.out.push(':');
                    self.out.push_str(&port(p));
                }
                if let Some(b) = &r.body {
                    self.out.push(' ');
                    self.body(b);
                }
            }
        }
    }

    fn attr(&mut self, a: &Attr) {
        self.out.push_str(&a.key.raw);
        self.out.push_str(" = ");
        self.value(&a.value);
    }

    fn endpoint(&mut self, e: &Endpoint) {
        self.out.push_str(&target(&e.target));
        if let Some(p) = &e.port {
            self.out.push(':');
            self.out.push_str(&port(p));
        }
        if let Some(x) = &e.except {
            self.out.push_str(" except ");
            match x.targets.as_slice() {
                [one] => self.out.push_str(&target(one)),
                many => {
                    let items: Vec<String> = many.iter().map(target).collect();
                    self.out.push('[');
                    self.out.push_str(&items.join(", "));
                    self.out.push(']');
                }
            }
        }
    }

    fn body(&mut self, b: &Body) {
        if let Some(flat) = self.flat_body(b)
            && self.column() + flat.chars().count() <= WIDTH
        {
            self.out.push_str(&flat);
            self.last_end = b.span.hi;
            return;
        }
        self.out.push('{');
        self.last_end = b.span.lo + 1;
        self.trailing_comment(b.span.lo + 1);
        self.depth += 1;
        self.stmts(&b.stmts);
        self.flush_comments(b.span.hi, b.stmts.is_empty());
        self.depth -= 1;
        self.newline();
        self.out.push('}');
        self.last_end = b.span.hi;
    }

    /// The one-line form of a body, if it may have one.
    fn flat_body(&self, b: &Body) -> Option<String> {
        if self.has_comments(b.span.lo, b.span.hi) {
            return None;
        }
        if b.stmts.is_empty() {
            return Some("{}".into());
        }
        let mut parts = Vec::new();
        for s in &b.stmts {
            let Stmt::Attr(a) = s else { return None };
            parts.push(format!("{} = {}", a.key.raw, flat_value(&a.value)?));
        }
        Some(format!("{{ {} }}", parts.join(", ")))
    }

    fn value(&mut self, v: &Value) {
        let span = v.span();
        if !self.has_comments(span.lo, span.hi)
            && let Some(flat) = flat_value(v)
            && (self.column() + flat.chars().count() <= WIDTH || !matches!(v, Value::List(..) | Value::Map(..)))
        {
            self.out.push_str(&flat);
            return;
        }
        match v {
            Value::List(items, span) => {
                self.out.push('[');
                self.depth += 1;
                self.last_end = span.lo + 1;
                for (i, item) in items.iter().enumerate() {
                    let s = item.span();
                    let had = self.flush_comments(s.lo, i == 0);
                    self.item_line(s.lo, i == 0 && !had);
                    self.value(item);
                    self.out.push(',');
                    self.last_end = s.hi;
                    self.trailing_after_comma(s.hi);
                }
                self.flush_comments(span.hi, items.is_empty());
                self.depth -= 1;
                self.newline();
                self.out.push(']');
                self.last_end = span.hi;
            }
            Value::Map(items, span) => {
                self.out.push('{');
                self.depth += 1;
                self.last_end = span.lo + 1;
                for (i, a) in items.iter().enumerate() {
                    let had = self.flush_comments(a.span.lo, i == 0);
                    self.item_line(a.span.lo, i == 0 && !had);
                    self.attr(a);
                    self.last_end = a.span.hi;
                    self.trailing_after_comma(a.span.hi);
                }
                self.flush_comments(span.hi, items.is_empty());
                self.depth -= 1;
                self.newline();
                self.out.push('}');
                self.last_end = span.hi;
            }
            other => {
                if let Some(flat) = flat_value(other) {
                    self.out.push_str(&flat);
                }
            }
        }
    }

    /// A trailing comment after a list element may follow its comma.
    fn trailing_after_comma(&mut self, hi: usize) {
        let after = self.text.get(hi..).unwrap_or("");
        let skip = after.len() - after.trim_start_matches([' ', '\t']).len();
        let comma = after.get(skip..).is_some_and(|r| r.starts_with(','));
        self.trailing_comment(if comma { hi + skip + 1 } else { hi });
    }
}

/// A value on one line; `None` for lists and maps that contain maps.
fn flat_value(v: &Value) -> Option<String> {
    Some(match v {
        Value::Str(s) => s.raw.clone(),
        Value::Int(t) | Value::Cidr(t) => t.text.clone(),
        Value::Bool(b, _) => b.to_string(),
        Value::Ident(i) => i.text.clone(),
        Value::List(items, _) => {
            let parts: Option<Vec<String>> = items.iter().map(flat_value).collect();
            format!("[{}]", parts?.join(", "))
        }
        Value::Map(items, _) => {
            if items.is_empty() {
                return Some("{}".into());
            }
            let parts: Option<Vec<String>> =
                items.iter().map(|a| flat_value(&a.value).map(|v| format!("{} = {v}", a.key.raw))).collect();
            format!("{{ {} }}", parts?.join(", "))
        }
    })
}

fn target(t: &Target) -> String {
    match t {
        Target::World(_) => "world".into(),
        Target::Namespace { name, .. } => format!("namespace({})", name.text),
        Target::Cidr(c) => c.text.clone(),
        Target::Fqdn(s) => s.raw.clone(),
        Target::Ref { ns: Some(ns), name, .. } => format!("{}/{}", ns.text, name.text),
        Target::Ref { ns: None, name, .. } => name.text.clone(),
    }
}

fn port(p: &PortRef) -> String {
    match p {
        PortRef::Number(t) => t.text.clone(),
        PortRef::Name(i) => i.text.clone(),
    }
}
