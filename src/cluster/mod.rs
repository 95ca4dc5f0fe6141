//! The cluster half of ztp: plan, apply and destroy against a live cluster.
//!
//! `applyset` owns the ownership convention (parent, ids, labels) and
//! `diff` the comparison of desired and live objects; both are pure.
//! `client` is the only code that talks to the API server; `lock` holds
//! the stack's Lease while apply and destroy write.

pub mod apply;
pub mod applyset;
pub mod client;
pub mod command;
pub mod diff;
pub mod doctor;
pub mod lock;
pub mod plan;

use serde_json::Value;

/// The value at a path of object keys, `Null` where any is missing (JSON
/// indexing without the panicking `Index` of arrays).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    static NULL: Value = Value::Null;
    path.iter().try_fold(v, |v, k| v.get(*k)).unwrap_or(&NULL)
}

/// `metadata.<field>` as a string.
pub fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    at(v, &["metadata", field]).as_str()
}
