//! Which statements, blocks and attributes each block accepts, and typed
//! access to attribute values.
//!
//! [`split`] sorts a body into attributes, blocks, flows and routes against a
//! [`Shape`], reporting what does not belong (unknown attributes and blocks
//! with did-you-mean, duplicates, misplaced statements). [`Values`] reads an
//! attribute as a string, number, boolean, enum word or list, following `let`
//! constants and reporting type errors.

use crate::ast::{self, Attr, Block, Flow, Route, Stmt, Value};
use crate::diag::{Diagnostic, codes, did_you_mean};
use crate::source::Span;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// What a block's body may contain.
pub struct Shape {
    /// The block, in words (`workload`, `the top level`).
    pub what: &'static str,
    pub attrs: &'static [&'static str],
    pub blocks: &'static [&'static str],
    pub flows: bool,
    pub routes: bool,
}

/// Every block kind with the place it belongs, for "not allowed here" help.
const HOMES: &[(&str, &str)] = &[
    ("mesh", "at the top level"),
    ("cluster", "at the top level"),
    ("namespace", "at the top level"),
    ("workload", "inside a `namespace`"),
    ("gateway", "inside a `namespace`"),
    ("waypoint", "inside a `namespace`"),
    ("port", "inside a `workload`"),
    ("selector", "inside a `workload`"),
    ("listener", "inside a `gateway`"),
    ("http", "inside an `allow` or `expect` flow"),
];

/// A body sorted by statement kind. Attributes keep their first occurrence.
pub struct Parts<'a> {
    pub attrs: BTreeMap<&'a str, &'a Attr>,
    /// Attributes the shape does not know (already reported).
    pub unknown: Vec<&'a Attr>,
    pub blocks: Vec<&'a Block>,
    pub flows: Vec<&'a Flow>,
    pub routes: Vec<&'a Route>,
}

pub fn split<'a>(stmts: impl IntoIterator<Item = &'a Stmt>, shape: &Shape, diags: &mut Vec<Diagnostic>) -> Parts<'a> {
    let mut parts = Parts {
        attrs: BTreeMap::new(),
        unknown: Vec::new(),
        blocks: Vec::new(),
        flows: Vec::new(),
        routes: Vec::new(),
    };
    for s in stmts {
        match s {
            Stmt::Attr(a) => {
                if !shape.attrs.contains(&a.key.text.as_str()) {
                    diags.push(unknown_attribute(a, shape));
                    parts.unknown.push(a);
                } else if let Some(first) = parts.attrs.get(a.key.text.as_str()) {
                    diags.push(
                        Diagnostic::new(
                            codes::DUPLICATE_ATTRIBUTE,
                            format!("`{}` is set twice {}", a.key.text, place(shape.what)),
                            a.key.span,
                            "set again here",
                        )
                        .with_secondary(first.key.span, "first set here")
                        .with_help("each attribute may be set only once; remove one of them"),
                    );
                } else {
                    parts.attrs.insert(a.key.text.as_str(), a);
                }
            }
            Stmt::Block(b) => {
                if shape.blocks.contains(&b.kind.text.as_str()) {
                    parts.blocks.push(b);
                } else {
                    diags.push(unknown_block(b, shape));
                }
            }
            Stmt::Flow(f) if shape.flows => parts.flows.push(f),
            Stmt::Route(r) if shape.routes => parts.routes.push(r),
            Stmt::Import(_) | Stmt::Let(_) | Stmt::Flow(_) | Stmt::Route(_) => {
                let home = match s {
                    Stmt::Import(_) | Stmt::Let(_) => "at the top level of a file",
                    Stmt::Flow(_) => "inside a `namespace` or at the top level",
                    _ => "inside a `gateway`",
                };
                diags.push(
                    Diagnostic::new(
                        codes::MISPLACED,
                        format!("{} is not allowed {}", s.describe(), place(shape.what)),
                        s.span(),
                        "not allowed here",
                    )
                    .with_help(format!("{} belongs {home}", s.describe())),
                );
            }
        }
    }
    parts
}

fn unknown_attribute(a: &Attr, shape: &Shape) -> Diagnostic {
    let mut d = Diagnostic::new(
        codes::UNKNOWN_ATTRIBUTE,
        format!("{} has no attribute `{}`", article(shape.what), a.key.text),
        a.key.span,
        "unknown attribute",
    );
    if let Some(s) = did_you_mean(&a.key.text, shape.attrs.iter().copied()) {
        d = d.with_help(format!("did you mean `{s}`?"));
    } else if shape.attrs.is_empty() {
        d = d.with_help(format!("{} takes no attributes", article(shape.what)));
    } else {
        d = d.with_help(format!("the attributes of {} are {}", article(shape.what), list(shape.attrs)));
    }
    d
}

fn unknown_block(b: &Block, shape: &Shape) -> Diagnostic {
    let kind = b.kind.text.as_str();
    if let Some((_, home)) = HOMES.iter().find(|(k, _)| *k == kind) {
        return Diagnostic::new(
            codes::MISPLACED,
            format!("{} block is not allowed {}", article(kind), place(shape.what)),
            b.kind.span,
            "not allowed here",
        )
        .with_help(format!("`{kind}` blocks belong {home}"));
    }
    let mut d = Diagnostic::new(
        codes::UNKNOWN_BLOCK,
        format!("unknown block `{kind}` {}", place(shape.what)),
        b.kind.span,
        "unknown block",
    );
    if let Some(s) = did_you_mean(kind, shape.blocks.iter().copied()) {
        d = d.with_help(format!("did you mean `{s}`?"));
    } else if shape.blocks.is_empty() {
        d = d.with_help(format!("{} contains no blocks", article(shape.what)));
    } else {
        d = d.with_help(format!("the blocks allowed here are {}", list(shape.blocks)));
    }
    d
}

/// "in a `workload`", "at the top level".
fn place(what: &str) -> String {
    if what.starts_with("the ") { format!("at {what}") } else { format!("in {}", article(what)) }
}

/// "a `workload`", "an `http`", "the top level".
pub fn article(what: &str) -> String {
    if what.starts_with("the ") {
        what.to_string()
    } else if what.starts_with(['a', 'e', 'i', 'o', 'u', 'h']) {
        format!("an `{what}`")
    } else {
        format!("a `{what}`")
    }
}

fn list(items: &[&str]) -> String {
    let v: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    v.join(", ")
}

impl Parts<'_> {
    /// Whether an unknown attribute is a misspelling of `name` (already
    /// reported with a suggestion, so "missing" would say it twice).
    pub fn misspelt(&self, name: &str) -> bool {
        self.unknown.iter().any(|a| did_you_mean(&a.key.text, [name]).is_some())
    }

    /// Reports a required attribute that is missing (Z0104), unless it is
    /// only misspelt.
    pub fn require(&self, what: &str, attr: &str, example: &str, at: Span, diags: &mut Vec<Diagnostic>) {
        if !self.attrs.contains_key(attr) && !self.misspelt(attr) {
            diags.push(
                Diagnostic::new(
                    codes::MISSING_ATTRIBUTE,
                    format!("{} needs `{attr}`", article(what)),
                    at,
                    format!("no `{attr}` here"),
                )
                .with_help(format!("add `{attr} = {example}`")),
            );
        }
    }
}

/// Typed reads of attribute values, following `let` constants.
pub struct Values<'a> {
    pub consts: &'a BTreeMap<String, &'a ast::Let>,
    /// Names of constants that were read, for the unused-constant warning.
    pub used: RefCell<BTreeSet<String>>,
    /// Each word read as a constant and where (for editors' navigation).
    pub uses: RefCell<Vec<(String, Span)>>,
}

impl<'a> Values<'a> {
    /// The value behind a bare word, if it names a constant; constants may
    /// name other constants (followed a bounded number of times, so a cycle
    /// ends as an unknown word).
    fn constant(&self, v: &'a Value) -> Option<&'a Value> {
        let mut cur = v;
        let mut found = None;
        for _ in 0..16 {
            let Value::Ident(i) = cur else { break };
            let Some(l) = self.consts.get(&i.text) else { break };
            self.used.borrow_mut().insert(i.text.clone());
            self.uses.borrow_mut().push((i.text.clone(), i.span));
            cur = &l.value;
            found = Some(cur);
        }
        found
    }

    /// The value behind any constants, without judging it.
    pub fn follow(&self, v: &'a Value) -> &'a Value {
        self.constant(v).unwrap_or(v)
    }

    /// Adds "used here" at the use of a constant when a diagnostic points
    /// into the constant's definition.
    fn at_use(v: &Value, d: Diagnostic) -> Diagnostic {
        match v {
            Value::Ident(i) if !i.span.contains(d.primary.span) => d.with_secondary(i.span, "used here"),
            _ => d,
        }
    }

    fn unknown_constant(&self, i: &ast::Ident, expected: &str) -> Diagnostic {
        let mut d = Diagnostic::new(
            codes::UNKNOWN_CONSTANT,
            format!("unknown constant `{}`", i.text),
            i.span,
            format!("expected {expected}"),
        );
        if let Some(s) = did_you_mean(&i.text, self.consts.keys().map(String::as_str)) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if expected == "a string" {
            d = d.with_help(format!("to write a string, quote it: `\"{}\"`", i.text));
        } else {
            d = d.with_help("declare it at the top level: `let NAME = VALUE`");
        }
        d
    }

    fn mismatch(v: &Value, expected: &str) -> Diagnostic {
        let mut d = Diagnostic::new(
            codes::TYPE_MISMATCH,
            format!("expected {expected}, found {}", v.describe()),
            v.span(),
            format!("expected {expected}"),
        );
        if let (Value::Str(s), "a number") = (v, expected)
            && s.value.parse::<u64>().is_ok()
        {
            d = d.with_help(format!("remove the quotes: `{}`", s.value));
        }
        d
    }

    /// Follows constants; reports a bare word that is not one. Errors about
    /// a constant's value also point at where it is used.
    pub fn resolved(&self, v: &'a Value, expected: &str) -> Result<&'a Value, Diagnostic> {
        let r = match v {
            Value::Ident(_) => self.constant(v).unwrap_or(v),
            _ => v,
        };
        match r {
            Value::Ident(i) if self.consts.contains_key(&i.text) => Err(Diagnostic::new(
                codes::UNKNOWN_CONSTANT,
                format!("constant `{}` is defined in terms of itself", i.text),
                i.span,
                "a cycle of constants",
            )
            .with_help("give one of the constants in the cycle a literal value")),
            Value::Ident(i) => Err(Self::at_use(v, self.unknown_constant(i, expected))),
            _ => Ok(r),
        }
    }

    fn typed<T>(&self, v: &'a Value, expected: &str, f: impl Fn(&'a Value) -> Option<T>) -> Result<T, Diagnostic> {
        let r = self.resolved(v, expected)?;
        f(r).ok_or_else(|| Self::at_use(v, Self::mismatch(r, expected)))
    }

    pub fn string(&self, v: &'a Value) -> Result<(String, Span), Diagnostic> {
        self.typed(v, "a string", |r| match r {
            Value::Str(s) => Some((s.value.clone(), s.span)),
            _ => None,
        })
    }

    /// A number as written (range checks belong to the caller).
    pub fn number(&self, v: &'a Value) -> Result<(String, Span), Diagnostic> {
        self.typed(v, "a number", |r| match r {
            Value::Int(t) => Some((t.text.clone(), t.span)),
            _ => None,
        })
    }

    pub fn boolean(&self, v: &'a Value) -> Result<(bool, Span), Diagnostic> {
        self.typed(v, "`true` or `false`", |r| match r {
            Value::Bool(b, s) => Some((*b, *s)),
            _ => None,
        })
    }

    pub fn cidr(&self, v: &'a Value) -> Result<(String, Span), Diagnostic> {
        self.typed(v, "a CIDR", |r| match r {
            Value::Cidr(t) => Some((t.text.clone(), t.span)),
            _ => None,
        })
    }

    /// One of a fixed set of words (`mtls = strict`). A constant holding such
    /// a word is accepted too.
    pub fn word<T: Copy>(&self, v: &'a Value, choices: &[(&str, T)], what: &str) -> Result<(T, Span), Diagnostic> {
        let names = || choices.iter().map(|(n, _)| *n);
        let v = match v {
            Value::Ident(i) if names().any(|n| n == i.text) => v,
            Value::Ident(_) => self.constant(v).unwrap_or(v),
            _ => v,
        };
        match v {
            Value::Ident(i) => {
                if let Some((_, t)) = choices.iter().find(|(n, _)| *n == i.text) {
                    return Ok((*t, i.span));
                }
                let all = names().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
                let mut d = Diagnostic::new(
                    codes::BAD_ENUM,
                    format!("`{}` is not a valid {what}", i.text),
                    i.span,
                    format!("expected one of {all}"),
                );
                if let Some(s) = did_you_mean(&i.text.to_ascii_lowercase(), names()) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                } else {
                    d = d.with_help(format!("the choices are {all}"));
                }
                Err(d)
            }
            Value::Str(s) if names().any(|n| n == s.value) => Err(Diagnostic::new(
                codes::TYPE_MISMATCH,
                format!("expected a {what}, found a string"),
                s.span,
                "quoted",
            )
            .with_help(format!("write it without quotes: `{}`", s.value))),
            other => Err(Self::mismatch(other, &format!("a {what}"))),
        }
    }

    /// A list (a single value is not promoted).
    pub fn list(&self, v: &'a Value) -> Result<&'a [Value], Diagnostic> {
        self.typed(v, "a list", |r| match r {
            Value::List(items, _) => Some(items.as_slice()),
            _ => None,
        })
        .map_err(|d| d.with_help("write a list in brackets: `[a, b]`"))
    }

    pub fn map(&self, v: &'a Value) -> Result<&'a [Attr], Diagnostic> {
        self.typed(v, "a map", |r| match r {
            Value::Map(items, _) => Some(items.as_slice()),
            _ => None,
        })
        .map_err(|d| d.with_help("write a map in braces: `{ key = \"value\" }`"))
    }
}
