//! YAML text of JSON values, written directly, byte for byte as
//! `serde_yaml` writes them.
//!
//! `serde_yaml` builds every scalar through libyaml's event emitter and,
//! for every string, tries it as null, bool, integer and float to decide
//! whether it must be quoted: a quarter of a large build. The objects ztp
//! writes are block mappings and sequences of short strings, so this
//! writer lays out the blocks itself (two-space mappings, sequences
//! indentless under their key, `- ` items opening their first entry inline,
//! `{}` and `[]` when empty) and decides plain or single-quoted for the
//! one-line ASCII strings that cannot read as numbers, with libyaml's own
//! rules. Any other scalar is handed to `serde_yaml` on its own, in the
//! same context, and a value this writer does not lay out (a string across
//! lines, an empty or very long key) is handed to it whole.
//! A property test holds the two to the same bytes.

use serde_json::{Map, Value};

/// `v` as one YAML document (without the `---` line), as
/// `serde_yaml::to_string(v)` writes it.
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    if write_value(&mut out, v).is_none() {
        out = serde_yaml::to_string(v).unwrap_or_default();
    }
    out
}

/// A document whose top level is the given mapping entries, which must be
/// in key order (as a `serde_json::Map` iterates them): the same text as
/// `to_string` of that mapping, without building it. `None` when the
/// entries need `serde_yaml` (the caller then builds the value).
pub fn entries_to_string(entries: &[(&str, &Value)]) -> Option<String> {
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("{}\n");
        return Some(out);
    }
    write_entries(&mut out, entries.iter().map(|(k, v)| (*k, *v)), 0, false)?;
    Some(out)
}

fn write_value(out: &mut String, v: &Value) -> Option<()> {
    match v {
        Value::Object(m) if !m.is_empty() => write_map(out, m, 0, false),
        Value::Array(a) if !a.is_empty() => write_seq(out, a, 0, false),
        // A scalar or an empty collection alone is a root scalar to
        // libyaml, with rules of its own; ztp never writes one.
        _ => None,
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn write_map(out: &mut String, m: &Map<String, Value>, indent: usize, inline_first: bool) -> Option<()> {
    write_entries(out, m.iter().map(|(k, v)| (k.as_str(), v)), indent, inline_first)
}

/// A block mapping at `indent`; with `inline_first` its first key follows
/// text already on the line (a sequence item's `- `).
fn write_entries<'a>(
    out: &mut String,
    entries: impl Iterator<Item = (&'a str, &'a Value)>,
    indent: usize,
    inline_first: bool,
) -> Option<()> {
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        write_key(out, k)?;
        out.push(':');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                write_map(out, m, indent + 2, false)?;
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_seq(out, a, indent, false)?;
            }
            _ => {
                out.push(' ');
                write_inline(out, v)?;
                out.push('\n');
            }
        }
    }
    Some(())
}

/// A block sequence whose dashes stand at `indent`.
fn write_seq(out: &mut String, a: &[Value], indent: usize, inline_first: bool) -> Option<()> {
    for (i, v) in a.iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => write_map(out, m, indent + 2, true)?,
            Value::Array(a) if !a.is_empty() => write_seq(out, a, indent + 2, true)?,
            _ => {
                write_inline(out, v)?;
                out.push('\n');
            }
        }
    }
    Some(())
}

/// A scalar, `{}` or `[]`, on the current line.
fn write_inline(out: &mut String, v: &Value) -> Option<()> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) if n.is_u64() || n.is_i64() => out.push_str(&n.to_string()),
        Value::String(s) if s.contains(['\n', '\r']) => return None,
        Value::String(s) => match style(s) {
            Some(Style::Plain) => out.push_str(s),
            Some(Style::SingleQuoted) => single_quoted(out, s),
            None => out.push_str(&by_serde_yaml(v)?),
        },
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Object(_) | Value::Array(_) => return None,
        // Floats: as serde_yaml writes them.
        Value::Number(_) => out.push_str(&by_serde_yaml(v)?),
    }
    Some(())
}

/// A scalar as serde_yaml writes it as a mapping's value, which is the
/// block context every scalar here is in.
fn by_serde_yaml(v: &Value) -> Option<String> {
    let mut m = Map::new();
    m.insert("k".into(), v.clone());
    let text = serde_yaml::to_string(&Value::Object(m)).ok()?;
    let scalar = text.strip_prefix("k: ")?.strip_suffix('\n')?;
    (!scalar.contains('\n')).then(|| scalar.to_string())
}

fn single_quoted(out: &mut String, s: &str) {
    out.push('\'');
    for part in s.split_inclusive('\'') {
        out.push_str(part);
        if part.ends_with('\'') {
            out.push('\'');
        }
    }
    out.push('\'');
}

/// A mapping key. Keys that libyaml cannot write as simple keys (empty,
/// over 128 bytes, across lines) leave the whole value to serde_yaml.
fn write_key(out: &mut String, k: &str) -> Option<()> {
    if k.is_empty() || k.len() > 128 || k.contains(['\n', '\r']) {
        return None;
    }
    match style(k) {
        Some(Style::Plain) => out.push_str(k),
        Some(Style::SingleQuoted) => single_quoted(out, k),
        None => {
            let mut m = Map::new();
            m.insert(k.to_string(), Value::Null);
            let text = serde_yaml::to_string(&Value::Object(m)).ok()?;
            let key = text.strip_suffix(": null\n")?;
            if key.contains('\n') {
                return None;
            }
            out.push_str(key);
        }
    }
    Some(())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Style {
    Plain,
    SingleQuoted,
}

/// How serde_yaml writes a one-line string of printable ASCII, or `None`
/// for any other string, or one that may read as a number.
///
/// serde_yaml quotes a string that YAML would read as something else:
/// empty, a null or bool word, or a number — and a number starts with a
/// digit, a sign or a dot, which are left to serde_yaml. libyaml then
/// writes the rest plain unless an indicator or a leading or trailing
/// space forbids it in block context, and single-quoted then.
fn style(s: &str) -> Option<Style> {
    let b = s.as_bytes();
    let &first = b.first()?;
    if !b.iter().all(|c| (b' '..=b'~').contains(c)) || matches!(first, b'0'..=b'9' | b'+' | b'-' | b'.') {
        // All digits is an integer to YAML whatever its length.
        return b.iter().all(u8::is_ascii_digit).then_some(Style::SingleQuoted);
    }
    if matches!(s, "null" | "Null" | "NULL" | "~" | "true" | "True" | "TRUE" | "false" | "False" | "FALSE") {
        return Some(Style::SingleQuoted);
    }
    Some(if block_plain_allowed(b) { Style::Plain } else { Style::SingleQuoted })
}

/// libyaml's scalar analysis, for printable ASCII on one line that does
/// not start with `-` or `.` (so never a `---` or `...` marker).
fn block_plain_allowed(b: &[u8]) -> bool {
    if b.first() == Some(&b' ') || b.last() == Some(&b' ') {
        return false;
    }
    let mut preceded_by_space = true;
    for (i, &c) in b.iter().enumerate() {
        let followed_by_space = b.get(i + 1).is_none_or(|n| *n == b' ');
        let indicator = if i == 0 {
            matches!(
                c,
                b'#' | b','
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'&'
                    | b'*'
                    | b'!'
                    | b'|'
                    | b'>'
                    | b'\''
                    | b'"'
                    | b'%'
                    | b'@'
                    | b'`'
            ) || (matches!(c, b'?' | b':') && followed_by_space)
        } else {
            (c == b':' && followed_by_space) || (c == b'#' && preceded_by_space)
        };
        if indicator {
            return false;
        }
        preceded_by_space = c == b' ';
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn same(v: &Value) {
        assert_eq!(to_string(v), serde_yaml::to_string(v).unwrap(), "{v}");
    }

    /// Written by this module, not handed to serde_yaml whole.
    fn direct(v: &Value) {
        let mut out = String::new();
        assert!(write_value(&mut out, v).is_some(), "{v}");
        same(v);
    }

    #[test]
    fn the_shapes_ztp_writes_match_serde_yaml() {
        same(&json!({}));
        same(&json!([]));
        same(&json!("plain"));
        direct(&json!({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "a", "labels": {"app.kubernetes.io/managed-by": "ztp"}, "annotations": {}},
            "spec": {
                "description": "ztp: workload demo/hello-app's policy",
                "endpointSelector": {"matchLabels": {"app": "hello-app", "k8s:io.kubernetes.pod.namespace": "demo"}},
                "egress": [
                    {"toEndpoints": [{"matchLabels": {"app": "x"}}], "toPorts": [{"ports": [{"port": "15008", "protocol": "TCP"}]}]},
                    {"toFQDNs": [{"matchName": "api.github.com"}, {"matchPattern": "*.example.com"}]},
                    {"toCIDRSet": [{"cidr": "10.0.0.0/16", "except": ["10.0.99.0/24"]}]},
                    [[1, 2], [], {}, null, true, 1.5, -3]
                ],
                "ingress": [],
                "enableDefaultDeny": {"egress": false, "ingress": true},
                "nested": [{"a": [{"b": [{"c": {}}]}], "d": "0123"}]
            }
        }));
    }

    #[test]
    fn strings_that_need_quotes_match_serde_yaml() {
        for s in [
            "",
            "53",
            "0123",
            "-1",
            "1.5",
            "1e5",
            ".inf",
            "0x1f",
            "true",
            "False",
            "null",
            "~",
            "a: b",
            "a #b",
            "#a",
            "- a",
            "-",
            "--- a",
            "...",
            "*",
            "*.example.com",
            "a'b",
            "é",
            "tab\tin",
            "\u{7}",
            "key:",
            " lead",
            "trail ",
            "a\nb",
            "a\n",
            "@x",
            "`x",
            "%x",
            "!x",
            "&x",
            "|",
            ">",
            "[a]",
            "{a}",
            "a,b",
            "?",
            "? a",
            "a?",
            ":a",
            "y",
            "no",
        ] {
            same(&json!(s));
            same(&json!({ "k": s }));
            same(&json!([s]));
            same(&json!({ s: 1 }));
        }
        same(&json!({ "x".repeat(129): 1 }));
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            "[ -~]{0,12}".prop_map(Value::String),
            "[a-z0-9:/.*' #-]{0,10}".prop_map(Value::String),
            "[ -~]{0,3}[:#?,'\"\\[\\]{}!&*|>%@` -]{0,3}[ -~]{0,3}".prop_map(Value::String),
            "(\\PC|\n){0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z.:/ -]{0,8}|[ -~]{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_matches_serde_yaml(v in value()) {
            prop_assert_eq!(to_string(&v), serde_yaml::to_string(&v).unwrap());
        }
    }
}
