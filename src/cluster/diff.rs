//! Comparing desired and live objects, and the field-level diff a plan
//! shows.
//!
//! [`unchanged`] is the test that needs no request: the desired object is a
//! recursive subset of the live one and the live applied-hash matches.
//! [`strip`] removes what the server owns (status, managedFields,
//! resourceVersion, …) before objects are compared or shown; [`render`]
//! prints a unified YAML diff with `similar`.

use super::applyset::APPLIED_HASH;
use super::at;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

/// Whether `desired` is contained in `live`: maps key-wise, lists
/// element-wise with equal length, scalars equal.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, v)| l.get(k).is_some_and(|lv| is_subset(v, lv))),
        (Value::Array(d), Value::Array(l)) => d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b)),
        (d, l) => d == l,
    }
}

/// The unchanged test: desired ⊆ live, and live records the same applied
/// hash (so a field removed from the desired object is a change too).
pub fn unchanged(desired: &Value, live: &Value) -> bool {
    let hash = |v: &Value| at(v, &["metadata", "annotations", APPLIED_HASH]).as_str().map(str::to_string);
    is_subset(desired, live) && hash(desired) == hash(live)
}

/// An object without what the server owns: managedFields, resourceVersion,
/// uid, generation, creationTimestamp, status and kubectl's
/// last-applied-configuration. Empty metadata maps left behind go too.
pub fn strip(v: &Value) -> Value {
    strip_owned(v.clone())
}

/// [`strip`], taking the object.
pub fn strip_owned(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["managedFields", "resourceVersion", "uid", "generation", "creationTimestamp", "selfLink"] {
                meta.remove(k);
            }
            if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                ann.remove("kubectl.kubernetes.io/last-applied-configuration");
                if ann.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
    }
    v
}

/// The digest of a live object's content: everything but status,
/// managedFields, resourceVersion and generation (which status writes and
/// no-op applies change). A saved plan records it to detect drift.
///
/// uid and creationTimestamp are identity, not content, and [`strip`]
/// takes them off too; a saved plan records the uid separately.
pub fn content_digest(live: &Value) -> String {
    stripped_digest(&strip(live))
}

/// [`content_digest`] of an object already [`strip`]ped.
pub fn stripped_digest(stripped: &Value) -> String {
    super::applyset::digest(stripped)
}

/// YAML text of a value for diffing (`{}` for nothing).
pub fn yaml(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        v => crate::yaml::to_string(v),
    }
}

/// A line of a rendered diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    Context,
    Added,
    Removed,
    /// `@@` between hunks.
    Gap,
}

/// A unified diff of `old` → `new`, `context` lines around each change,
/// every line indented by `indent`. Colour: green additions, red removals.
pub fn render(old: &str, new: &str, context: usize, indent: &str, color: bool) -> String {
    let diff = TextDiff::from_lines(old, new);
    let mut out = String::new();
    for (i, group) in diff.grouped_ops(context).iter().enumerate() {
        if i > 0 {
            push(&mut out, indent, Line::Gap, "...\n", color);
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let kind = match change.tag() {
                    ChangeTag::Equal => Line::Context,
                    ChangeTag::Insert => Line::Added,
                    ChangeTag::Delete => Line::Removed,
                };
                let text = change.to_string_lossy();
                let text = if text.ends_with('\n') { text.into_owned() } else { format!("{text}\n") };
                push(&mut out, indent, kind, &text, color);
            }
        }
    }
    out
}

fn push(out: &mut String, indent: &str, kind: Line, text: &str, color: bool) {
    let (sign, on) = match kind {
        Line::Context => ("  ", ""),
        Line::Added => ("+ ", "\x1b[32m"),
        Line::Removed => ("- ", "\x1b[31m"),
        Line::Gap => ("  ", "\x1b[2m"),
    };
    if color && !on.is_empty() {
        out.push_str(&format!("{indent}{on}{sign}{}\x1b[0m\n", text.trim_end_matches('\n')));
    } else {
        out.push_str(&format!("{indent}{sign}{text}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_is_keywise_for_maps_and_exact_length_for_lists() {
        let live = json!({"a": 1, "b": {"c": [1, {"d": 2, "e": 3}]}, "f": "x"});
        assert!(is_subset(&json!({"b": {"c": [1, {"d": 2}]}}), &live));
        assert!(!is_subset(&json!({"b": {"c": [1]}}), &live), "a shorter list is a change");
        assert!(!is_subset(&json!({"a": 2}), &live));
        assert!(!is_subset(&json!({"g": 1}), &live));
    }

    #[test]
    fn unchanged_needs_the_same_applied_hash() {
        let d = json!({"metadata": {"annotations": {APPLIED_HASH: "1"}}, "spec": {"a": 1}});
        let live_same = json!({"metadata": {"annotations": {APPLIED_HASH: "1"}, "uid": "u"}, "spec": {"a": 1, "b": 2}});
        let live_old = json!({"metadata": {"annotations": {APPLIED_HASH: "0"}}, "spec": {"a": 1, "b": 2}});
        assert!(unchanged(&d, &live_same));
        assert!(!unchanged(&d, &live_old), "a removed field changes the hash, not the subset");
    }

    #[test]
    fn strip_removes_server_fields() {
        let live = json!({
            "metadata": {"name": "a", "uid": "u", "resourceVersion": "3", "generation": 2, "managedFields": [],
                          "creationTimestamp": "t",
                          "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {}, "status": {"x": 1}
        });
        assert_eq!(strip(&live), json!({"metadata": {"name": "a"}, "spec": {}}));
        let mut bumped = live.clone();
        bumped["metadata"]["resourceVersion"] = json!("9");
        bumped["status"] = json!({"x": 2});
        assert_eq!(content_digest(&live), content_digest(&bumped));
    }

    #[test]
    fn render_shows_changed_lines_with_context() {
        let old = "a: 1\nb: 2\nc: 3\nd: 4\n";
        let new = "a: 1\nb: 5\nc: 3\nd: 4\n";
        assert_eq!(render(old, new, 1, "    ", false), "      a: 1\n    - b: 2\n    + b: 5\n      c: 3\n");
        assert!(render(old, new, 1, "", true).contains("\x1b[32m+ b: 5\x1b[0m"));
        assert_eq!(render(old, old, 3, "", false), "");
    }
}
