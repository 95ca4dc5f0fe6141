//! Go to definition, find references and the outline.
//!
//! Definitions and references come from the resolver's index
//! ([`crate::resolve::index`]), so they follow exactly the rules the
//! checker applies (`name` in the flow's namespace, `ns/name` elsewhere,
//! ports by name or number); imports come from the loader. The outline is
//! the file's own tree.

use super::analysis::Locator;
use super::documents::LineIndex;
use crate::ast::{self, Stmt, Target};
use crate::driver::Analysis;
use crate::source::{SourceId, Span};
use lsp_types::{DocumentSymbol, Location, Position, Range, SymbolKind};

/// Where the name or import at `offset` is declared.
pub fn definition(a: &Analysis, at: &Locator<'_>, id: SourceId, offset: usize) -> Vec<Location> {
    if let Some((_, _, target)) = a.imports.iter().find(|(from, s, _)| *from == id && s.lo <= offset && offset <= s.hi)
    {
        let start = Range { start: Position::default(), end: Position::default() };
        return at.uri(*target).map(|uri| Location { uri, range: start }).into_iter().collect();
    }
    let Some(index) = &a.index else { return Vec::new() };
    let Some((_, symbol)) = index.at(id, offset) else { return Vec::new() };
    index.declarations_of(symbol).filter_map(|s| at.location(s)).collect()
}

/// Every use of the name at `offset` (and its declarations, if asked), in
/// source order.
pub fn references(a: &Analysis, at: &Locator<'_>, id: SourceId, offset: usize, declarations: bool) -> Vec<Location> {
    let Some(index) = &a.index else { return Vec::new() };
    let Some((_, symbol)) = index.at(id, offset) else { return Vec::new() };
    let mut spans: Vec<Span> = index.uses_of(symbol).collect();
    if declarations {
        spans.extend(index.declarations_of(symbol));
    }
    spans.sort();
    spans.dedup();
    spans.into_iter().filter_map(|s| at.location(s)).collect()
}

/// The outline of one file: imports, constants, blocks with their
/// contents, flows and routes.
pub fn symbols(file: &ast::File, text: &str) -> Vec<DocumentSymbol> {
    let lines = LineIndex::new(text);
    file.stmts.iter().filter_map(|s| symbol(s, text, &lines)).collect()
}

fn symbol(s: &Stmt, text: &str, lines: &LineIndex) -> Option<DocumentSymbol> {
    let range = |sp: Span| lines.range(text, sp.lo, sp.hi);
    let (name, detail, kind, selection, children) = match s {
        Stmt::Import(i) => {
            (i.path.value.clone(), Some("import".to_string()), SymbolKind::MODULE, i.path.span, Vec::new())
        }
        Stmt::Let(l) => (l.name.text.clone(), Some("let".to_string()), SymbolKind::CONSTANT, l.name.span, Vec::new()),
        Stmt::Flow(f) => {
            let name = format!("{} {} -> {}", f.kind.keyword(), endpoint(&f.src), endpoint(&f.dst));
            (name, None, SymbolKind::EVENT, f.kind_span, Vec::new())
        }
        Stmt::Route(r) => {
            let port = r.port.as_ref().map(|p| format!(":{}", port_text(p))).unwrap_or_default();
            let name = format!("route {} -> {}{port}", r.path.raw, target(&r.target));
            (name, None, SymbolKind::METHOD, r.path.span, Vec::new())
        }
        Stmt::Attr(_) => return None,
        Stmt::Block(b) => {
            let kind = match b.kind.text.as_str() {
                "namespace" => SymbolKind::NAMESPACE,
                "workload" => SymbolKind::CLASS,
                "gateway" => SymbolKind::INTERFACE,
                "waypoint" => SymbolKind::OBJECT,
                "port" | "listener" => SymbolKind::FIELD,
                "mesh" | "cluster" => SymbolKind::MODULE,
                // selector, http: details of their block, not outline items.
                _ => return None,
            };
            let name = b.name.as_ref().map_or_else(|| b.kind.text.clone(), |n| n.text.clone());
            let selection = b.name.as_ref().map_or(b.kind.span, |n| n.span);
            let children = b.body.stmts.iter().filter_map(|s| symbol(s, text, lines)).collect();
            (name, Some(b.kind.text.clone()), kind, selection, children)
        }
    };
    #[allow(deprecated)]
    Some(DocumentSymbol {
        name,
        detail,
        kind,
        tags: None,
        deprecated: None,
        range: range(s.span()),
        selection_range: range(selection),
        children: (!children.is_empty()).then_some(children),
    })
}

fn port_text(p: &ast::PortRef) -> &str {
    match p {
        ast::PortRef::Number(t) => &t.text,
        ast::PortRef::Name(i) => &i.text,
    }
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

fn endpoint(e: &ast::Endpoint) -> String {
    let port = e.port.as_ref().map(|p| format!(":{}", port_text(p))).unwrap_or_default();
    format!("{}{port}", target(&e.target))
}
