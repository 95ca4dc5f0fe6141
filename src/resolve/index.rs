//! Where each name is declared and used, written down while resolving: the
//! side table editors read for go to definition, find references and hover.
//!
//! Resolution decides once what a name means; this table only records the
//! answer, so navigation and diagnostics can never disagree. Recording
//! changes nothing that is resolved or reported. Spans are the names as
//! written (a namespace is declared once per block of that name).

use crate::hir::{GatewayId, NamespaceId, WorkloadId};
use crate::source::{SourceId, Span};

/// Something a name can refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Symbol {
    Namespace(NamespaceId),
    Workload(WorkloadId),
    Gateway(GatewayId),
    /// A workload's port, by index into its ports.
    Port(WorkloadId, usize),
    /// A gateway's listener, by index into its listeners.
    Listener(GatewayId, usize),
    /// A waypoint, by index into its namespace's waypoints.
    Waypoint(NamespaceId, usize),
    /// A `let` constant, by index into [`Index::constants`].
    Constant(usize),
}

/// Declarations and uses of every name of a program.
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// The name at each declaration.
    pub declarations: Vec<(Span, Symbol)>,
    /// Each use of a declared name that resolved.
    pub uses: Vec<(Span, Symbol)>,
    /// `let` constants: name and the span of the name where it is declared.
    pub constants: Vec<(String, Span)>,
}

impl Index {
    /// The declaration or use at `offset` of `source` (the innermost one).
    pub fn at(&self, source: SourceId, offset: usize) -> Option<(Span, Symbol)> {
        self.declarations
            .iter()
            .chain(&self.uses)
            .filter(|(s, _)| s.source == source && s.lo <= offset && offset <= s.hi)
            .min_by_key(|(s, _)| s.hi - s.lo)
            .copied()
    }

    /// Where `symbol` is declared.
    pub fn declarations_of(&self, symbol: Symbol) -> impl Iterator<Item = Span> + '_ {
        self.declarations.iter().filter(move |(_, s)| *s == symbol).map(|(sp, _)| *sp)
    }

    /// Where `symbol` is used.
    pub fn uses_of(&self, symbol: Symbol) -> impl Iterator<Item = Span> + '_ {
        self.uses.iter().filter(move |(_, s)| *s == symbol).map(|(sp, _)| *sp)
    }

    /// Sorts and drops repeats (a constant read twice by one attribute).
    pub(super) fn finish(&mut self) {
        for v in [&mut self.declarations, &mut self.uses] {
            v.sort();
            v.dedup();
        }
    }
}
