//! The integration tests, in one binary to keep link times down.

mod build;
mod cli;
mod cluster;
mod codes;
mod diagnostics;
mod examples;
mod fakeapi;
mod fmt;
mod generated;
mod manifests;
mod outage;
mod robustness;
mod support;
mod verify;
