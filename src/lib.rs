//! ztp: a compiler and deployment tool for zero-trust Kubernetes networking.
//!
//! The pipeline runs one way: `syntax` (text → AST + trivia) → `resolve`
//! (imports, schema, names → HIR, with values parsed by `value`) → `typeck`
//! (the rules that relate several items) and, beside it, `fmt` (AST + trivia → canonical text). `driver` runs the stages
//! and collects diagnostics; `cli` is argument handling only; `lsp` serves
//! the same stages to editors.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
// A compiler's errors are its everyday product: diagnostics are returned by
// value, not boxed.
#![allow(clippy::result_large_err)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod ast;
pub mod backend;
pub mod cli;
pub mod cluster;
pub mod diag;
pub mod driver;
pub mod fmt;
pub mod graph;
pub mod hir;
pub mod ir;
pub mod lsp;
pub mod manifest;
pub mod output;
pub mod par;
pub mod resolve;
pub mod source;
pub mod syntax;
pub mod typeck;
pub mod value;
pub mod verify;
pub mod yaml;
