//! The integration tests, in one binary to keep link times down.

mod build;
mod cli;
mod cluster;
mod codes;
mod diagnostics;
mod editors;
mod examples;
mod fakeapi;
mod fmt;
mod generated;
mod lsp;
mod manifests;
mod outage;
mod robustness;
mod support;
mod verify;
