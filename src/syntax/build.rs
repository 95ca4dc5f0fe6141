//! pest pairs → AST. Knows the grammar's rule names; nothing outside
//! `syntax` does. The grammar guarantees the shape of each pair, so a pair
//! that does not have it is a bug in this file: it is reported as a syntax
//! error at that pair, never as a panic.

use super::Rule;
use crate::ast::*;
use crate::diag::{Diagnostic, codes};
use crate::source::{SourceId, Span};
use pest::iterators::{Pair, Pairs};

pub(super) struct Builder {
    pub source: SourceId,
    pub diags: Vec<Diagnostic>,
}

type P<'i> = Pair<'i, Rule>;

/// Children of a pair, without comments and keywords (flow keywords, which
/// carry meaning, are kept).
fn inner<'i>(p: P<'i>) -> impl Iterator<Item = P<'i>> {
    p.into_inner().filter(|c| {
        !matches!(
            c.as_rule(),
            Rule::COMMENT | Rule::kw_import | Rule::kw_let | Rule::kw_route | Rule::kw_except | Rule::kw_namespace
        )
    })
}

impl Builder {
    /// The pair's span without trailing whitespace and comments: pest's
    /// implicit whitespace before an optional tail (`dest ~ body?`) stays
    /// consumed when the tail is absent, and a statement must not own the
    /// comment that follows it.
    fn span(&self, p: &P<'_>) -> Span {
        let s = p.as_span();
        let (lo, text) = (s.start(), s.as_str());
        let mut len = text.trim_end().len();
        // A comment runs to its line's end, so one can end the trimmed text
        // only if its last line holds `//`; most statements need no walk.
        // (Bytes, not chars: this runs for every pair, and `/` and `\n`
        // are never part of a longer UTF-8 character.)
        let trimmed = text.as_bytes().get(..len).unwrap_or_default();
        let last_line = trimmed.rsplit(|&b| b == b'\n').next().unwrap_or_default();
        if !last_line.windows(2).any(|w| w == b"//") {
            return Span::new(self.source, lo, lo + len);
        }
        let comments: Vec<(usize, usize)> = p
            .clone()
            .into_inner()
            .flatten()
            .filter(|c| c.as_rule() == Rule::COMMENT)
            .map(|c| (c.as_span().start() - lo, c.as_span().end() - lo))
            .collect();
        loop {
            len = text.get(..len).map_or(len, |t| t.trim_end().len());
            match comments.iter().find(|(_, end)| *end == len) {
                Some((start, _)) => len = *start,
                None => break,
            }
        }
        Span::new(self.source, lo, lo + len)
    }

    fn malformed(&mut self, span: Span) {
        self.diags.push(Diagnostic::new(codes::SYNTAX, "malformed statement", span, "the parser could not read this"));
    }

    pub fn file(&mut self, mut pairs: Pairs<'_, Rule>) -> Option<File> {
        let file = pairs.next()?;
        let span = self.span(&file);
        let stmts = inner(file).filter(|p| p.as_rule() != Rule::EOI).filter_map(|p| self.stmt(p)).collect();
        Some(File { stmts, span })
    }

    fn stmt(&mut self, p: P<'_>) -> Option<Stmt> {
        let span = self.span(&p);
        let out = match p.as_rule() {
            Rule::import => {
                let path = self.string(inner(p).next()?)?;
                Some(Stmt::Import(Import { path, span }))
            }
            Rule::let_decl => {
                let mut it = inner(p);
                let name = self.ident(it.next()?);
                let value = self.value(it.next()?)?;
                Some(Stmt::Let(Let { name, value, span }))
            }
            Rule::flow => self.flow(p).map(|f| Stmt::Flow(Box::new(f))),
            Rule::route => self.route(p).map(|r| Stmt::Route(Box::new(r))),
            Rule::attr => self.attr(p).map(Stmt::Attr),
            Rule::block => {
                let mut kind = None;
                let mut name = None;
                let mut body = None;
                for c in inner(p) {
                    match c.as_rule() {
                        Rule::ident if kind.is_none() => kind = Some(self.ident(c)),
                        Rule::ident => name = Some(self.ident(c)),
                        Rule::body => body = self.body(c),
                        _ => {}
                    }
                }
                Some(Stmt::Block(Block { kind: kind?, name, body: body?, span }))
            }
            _ => None,
        };
        if out.is_none() {
            self.malformed(span);
        }
        out
    }

    fn body(&mut self, p: P<'_>) -> Option<Body> {
        let span = self.span(&p);
        let stmts = inner(p).filter_map(|c| self.stmt(c)).collect();
        Some(Body { stmts, span })
    }

    fn flow(&mut self, p: P<'_>) -> Option<Flow> {
        let span = self.span(&p);
        let mut it = inner(p);
        let kw = it.next()?;
        let kind_span = self.span(&kw);
        let words: Vec<Rule> = inner(kw).map(|c| c.as_rule()).collect();
        let kind = match words.as_slice() {
            [Rule::kw_allow] => FlowKind::Allow,
            [Rule::kw_expect, Rule::kw_allow] => FlowKind::ExpectAllow,
            [Rule::kw_expect, Rule::kw_deny] => FlowKind::ExpectDeny,
            _ => return None,
        };
        let src = self.endpoint(it.next()?)?;
        let dst = self.endpoint(it.next()?)?;
        let body = match it.next() {
            Some(b) => Some(self.body(b)?),
            None => None,
        };
        Some(Flow { kind, kind_span, src, dst, body, span })
    }

    fn route(&mut self, p: P<'_>) -> Option<Route> {
        let span = self.span(&p);
        let mut path = None;
        let mut target = None;
        let mut port = None;
        let mut body = None;
        for c in inner(p) {
            match c.as_rule() {
                Rule::string if path.is_none() => path = self.string(c),
                Rule::port_ref => port = self.port_ref(c),
                Rule::body => body = self.body(c),
                _ => target = self.target(c),
            }
        }
        Some(Route { path: path?, target: target?, port, body, span })
    }

    fn endpoint(&mut self, p: P<'_>) -> Option<Endpoint> {
        let span = self.span(&p);
        let mut target = None;
        let mut port = None;
        let mut except = None;
        for c in inner(p) {
            match c.as_rule() {
                Rule::port_ref => port = self.port_ref(c),
                Rule::except => except = self.except(c),
                _ => target = self.target(c),
            }
        }
        Some(Endpoint { target: target?, port, except, span })
    }

    fn except(&mut self, p: P<'_>) -> Option<Except> {
        let span = self.span(&p);
        let c = inner(p).next()?;
        if c.as_rule() == Rule::target_list {
            let targets = inner(c).filter_map(|t| self.target(t)).collect();
            Some(Except { targets, span })
        } else {
            Some(Except { targets: vec![self.target(c)?], span })
        }
    }

    fn target(&mut self, p: P<'_>) -> Option<Target> {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::world => Some(Target::World(span)),
            Rule::ns_selector => Some(Target::Namespace { name: self.ident(inner(p).next()?), span }),
            Rule::cidr => Some(Target::Cidr(self.token(&p))),
            Rule::string => Some(Target::Fqdn(self.string(p)?)),
            Rule::qualified => {
                let mut it = inner(p);
                let ns = self.ident(it.next()?);
                let name = self.ident(it.next()?);
                Some(Target::Ref { ns: Some(ns), name, span })
            }
            Rule::ident => Some(Target::Ref { ns: None, name: self.ident(p), span }),
            _ => None,
        }
    }

    fn port_ref(&mut self, p: P<'_>) -> Option<PortRef> {
        let c = inner(p).next()?;
        match c.as_rule() {
            Rule::int => Some(PortRef::Number(self.token(&c))),
            _ => Some(PortRef::Name(self.ident(c))),
        }
    }

    fn attr(&mut self, p: P<'_>) -> Option<Attr> {
        let span = self.span(&p);
        let mut it = inner(p);
        let k = it.next()?;
        let key = if k.as_rule() == Rule::string {
            let s = self.string(k)?;
            Key { text: s.value, raw: s.raw, quoted: true, span: s.span }
        } else {
            let i = self.ident(k);
            Key { raw: i.text.clone(), text: i.text, quoted: false, span: i.span }
        };
        let value = self.value(it.next()?)?;
        Some(Attr { key, value, span })
    }

    fn value(&mut self, p: P<'_>) -> Option<Value> {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::string => Some(Value::Str(self.string(p)?)),
            Rule::int => Some(Value::Int(self.token(&p))),
            Rule::cidr => Some(Value::Cidr(self.token(&p))),
            Rule::bool => Some(Value::Bool(p.as_str() == "true", span)),
            Rule::ident => Some(Value::Ident(self.ident(p))),
            Rule::list => {
                let items = inner(p).filter_map(|c| self.value(c)).collect();
                Some(Value::List(items, span))
            }
            Rule::map => {
                let items = inner(p).filter_map(|c| self.attr(c)).collect();
                Some(Value::Map(items, span))
            }
            _ => {
                self.malformed(span);
                None
            }
        }
    }

    fn ident(&self, p: P<'_>) -> Ident {
        Ident { text: p.as_str().to_string(), span: self.span(&p) }
    }

    fn token(&self, p: &P<'_>) -> Token {
        Token { text: p.as_str().to_string(), span: self.span(p) }
    }

    /// Unescapes a string literal; unknown escapes are reported (Z0003).
    fn string(&mut self, p: P<'_>) -> Option<Str> {
        let span = self.span(&p);
        let raw = p.as_str().to_string();
        let body = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(&raw);
        let mut value = String::with_capacity(body.len());
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                value.push(c);
                continue;
            }
            match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((j, other)) => {
                    let lo = span.lo + 1 + i;
                    let hi = span.lo + 1 + j + other.len_utf8();
                    self.diags.push(
                        Diagnostic::new(
                            codes::BAD_ESCAPE,
                            format!("invalid escape sequence `\\{other}`"),
                            Span::new(self.source, lo, hi),
                            "not a known escape",
                        )
                        .with_help("the escapes are \\\" \\\\ \\n and \\t; write a backslash as \\\\"),
                    );
                }
                None => value.push('\\'),
            }
        }
        Some(Str { value, raw, span })
    }
}
