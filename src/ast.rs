//! The source-level tree of one `.ztp` file, as written.
//!
//! The tree is generic about blocks and attributes (`kind [name] { ... }`,
//! `key = value`): which blocks and attributes mean something is decided by
//! `resolve::schema`, not here, so the formatter can print any file that
//! parses. Every node keeps its byte span; comments live beside the tree in
//! [`Trivia`]. Literal text is kept as written (`raw`) so that formatting never
//! changes a value.

use crate::source::Span;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

// Flows and routes are boxed: unboxed, every statement of a file would
// take a flow's size (600 bytes), which made a large program's trees most
// of its peak memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    Import(Import),
    Let(Let),
    Flow(Box<Flow>),
    Route(Box<Route>),
    Attr(Attr),
    Block(Block),
}

impl Stmt {
    pub fn span(&self) -> Span {
        match self {
            Stmt::Import(s) => s.span,
            Stmt::Let(s) => s.span,
            Stmt::Flow(s) => s.span,
            Stmt::Route(s) => s.span,
            Stmt::Attr(s) => s.span,
            Stmt::Block(s) => s.span,
        }
    }

    /// What the statement is, in words, for "not allowed here" messages.
    pub fn describe(&self) -> String {
        match self {
            Stmt::Import(_) => "`import`".into(),
            Stmt::Let(_) => "`let`".into(),
            Stmt::Flow(f) => format!("`{}`", f.kind.keyword()),
            Stmt::Route(_) => "`route`".into(),
            Stmt::Attr(a) => format!("attribute `{}`", a.key.text),
            Stmt::Block(b) => format!("`{}` block", b.kind.text),
        }
    }
}

/// A name as written: identifiers, block kinds, port names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub text: String,
    pub span: Span,
}

/// A string literal: `value` is unescaped, `raw` is the source text with quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Str {
    pub value: String,
    pub raw: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    pub path: Str,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Let {
    pub name: Ident,
    pub value: Value,
    pub span: Span,
}

/// `key = value`. Quoted keys (label keys such as `"app.kubernetes.io/name"`)
/// have `quoted` set; `text` is the unquoted key either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub key: Key,
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub text: String,
    pub raw: String,
    pub quoted: bool,
    pub span: Span,
}

/// `kind [name] { body }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub kind: Ident,
    pub name: Option<Ident>,
    pub body: Body,
    pub span: Span,
}

/// `{ stmt* }`; `span` covers the braces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowKind {
    Allow,
    ExpectAllow,
    ExpectDeny,
}

impl FlowKind {
    pub fn keyword(self) -> &'static str {
        match self {
            FlowKind::Allow => "allow",
            FlowKind::ExpectAllow => "expect allow",
            FlowKind::ExpectDeny => "expect deny",
        }
    }
}

/// `allow SRC -> DST [{ ... }]` and the `expect` forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub kind: FlowKind,
    pub kind_span: Span,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub body: Option<Body>,
    pub span: Span,
}

/// `route "/path" -> target[:port] [{ ... }]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub path: Str,
    pub target: Target,
    pub port: Option<PortRef>,
    pub body: Option<Body>,
    pub span: Span,
}

/// One side of a flow: a target, an optional port, optional exceptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub target: Target,
    pub port: Option<PortRef>,
    pub except: Option<Except>,
    pub span: Span,
}

/// `except x` or `except [x, y]` (the same thing: brackets are layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Except {
    pub targets: Vec<Target>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `world`: anything outside the cluster.
    World(Span),
    /// `namespace(x)`: every workload of a namespace.
    Namespace { name: Ident, span: Span },
    /// `10.0.0.0/8` (as written; checked by typeck).
    Cidr(Token),
    /// `"api.github.com"`, `"*.github.com"`.
    Fqdn(Str),
    /// `name` or `ns/name`.
    Ref { ns: Option<Ident>, name: Ident, span: Span },
}

impl Target {
    pub fn span(&self) -> Span {
        match self {
            Target::World(s) => *s,
            Target::Namespace { span, .. } => *span,
            Target::Cidr(t) => t.span,
            Target::Fqdn(s) => s.span,
            Target::Ref { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRef {
    Number(Token),
    Name(Ident),
}

impl PortRef {
    pub fn span(&self) -> Span {
        match self {
            PortRef::Number(t) => t.span,
            PortRef::Name(i) => i.span,
        }
    }
}

/// A literal kept exactly as written (numbers, CIDRs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(Str),
    Int(Token),
    Bool(bool, Span),
    Cidr(Token),
    /// A bare word: an enum value (`strict`, `GET`) or a `let` constant.
    Ident(Ident),
    List(Vec<Value>, Span),
    Map(Vec<Attr>, Span),
}

impl Value {
    pub fn span(&self) -> Span {
        match self {
            Value::Str(s) => s.span,
            Value::Int(t) | Value::Cidr(t) => t.span,
            Value::Bool(_, s) | Value::List(_, s) | Value::Map(_, s) => *s,
            Value::Ident(i) => i.span,
        }
    }

    /// The kind of value, in words, for type errors.
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "a number",
            Value::Bool(..) => "a boolean",
            Value::Cidr(_) => "a CIDR",
            Value::Ident(_) => "a name",
            Value::List(..) => "a list",
            Value::Map(..) => "a map",
        }
    }
}

/// A `//` comment. `own_line` is set when nothing but whitespace precedes it
/// on its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    pub text: String,
    pub span: Span,
    pub own_line: bool,
}

/// What the formatter needs besides the tree: comments and blank lines, in
/// source order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trivia {
    pub comments: Vec<Comment>,
    /// Start offsets of lines that hold only whitespace (after the first
    /// line: a blank line separates what is before it from what is after).
    pub blank_lines: Vec<usize>,
}
