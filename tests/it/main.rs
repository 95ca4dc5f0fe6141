//! The integration tests, in one binary to keep link times down.

mod build;
mod cli;
mod codes;
mod diagnostics;
mod examples;
mod fmt;
mod robustness;
mod support;
