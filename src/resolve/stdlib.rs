//! The stdlib: `.ztp` modules shipped inside the binary, imported as
//! `import "std/<name>"`. Their sources live in `stdlib/`; each starts with a
//! comment saying what it provides. Settings made by a stdlib module are
//! defaults: a program's own `cluster` or `mesh` block may override them.

/// Every stdlib module: name (without `std/`) and source.
pub const MODULES: &[(&str, &str)] = &[
    ("baseline", include_str!("../../stdlib/baseline.ztp")),
    ("observability", include_str!("../../stdlib/observability.ztp")),
];

pub fn module(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
