//! Completion: names at flow endpoints, ports after `:`, block and
//! attribute names from the schema, and the words an attribute takes
//! (protocols, HTTP methods, modes).
//!
//! Completion runs while a line is half written, when the file seldom
//! parses, so the place is read from the text before the cursor alone
//! (which blocks are open, what the statement so far is) and the names come
//! from the latest program that resolved ([`Names`], kept across edits).

use crate::hir::Program;
use crate::resolve::{shape_of, words_of};
use lsp_types::{CompletionItem, CompletionItemKind, CompletionTextEdit, Range, TextEdit};
use std::collections::BTreeMap;

/// What completion needs of a program: each namespace's workloads and
/// gateways with their ports or listeners.
#[derive(Clone, Debug, Default)]
pub struct Names {
    pub namespaces: BTreeMap<String, BTreeMap<String, Member>>,
}

#[derive(Clone, Debug)]
pub struct Member {
    pub gateway: bool,
    /// Port (or listener) names with a short description.
    pub ports: Vec<(String, String)>,
}

impl Names {
    pub fn of(p: &Program) -> Names {
        let mut namespaces: BTreeMap<String, BTreeMap<String, Member>> = BTreeMap::new();
        for n in &p.namespaces {
            let members = namespaces.entry(n.name.value.clone()).or_default();
            for w in &n.workloads {
                let ports = w
                    .ports
                    .iter()
                    .map(|x| (x.name.value.clone(), format!("{}/{}", x.number.value, x.protocol.value.as_str())))
                    .collect();
                members.insert(w.name.value.clone(), Member { gateway: false, ports });
            }
            for g in &n.gateways {
                let ports =
                    g.listeners.iter().map(|l| (l.name.value.clone(), format!("listener {}", l.port.value))).collect();
                members.insert(g.name.value.clone(), Member { gateway: true, ports });
            }
        }
        Names { namespaces }
    }
}

/// An open block before the cursor: its kind (`flow` for `allow ... {`,
/// `value` for a map value) and name.
#[derive(Debug)]
struct Open {
    kind: String,
    name: Option<String>,
}

/// The blocks open at the end of `text`, and the statement written so far
/// since the innermost `{`, `}` or line break; `None` inside a string or a
/// comment.
fn context(text: &str) -> Option<(Vec<Open>, &str)> {
    let mut stack: Vec<Open> = Vec::new();
    let mut stmt_start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let mut closed = false;
                while let Some((_, d)) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\n' => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                if !closed {
                    return None;
                }
            }
            '/' if chars.peek().is_some_and(|(_, d)| *d == '/') => {
                let mut ended = false;
                for (j, d) in chars.by_ref() {
                    if d == '\n' {
                        stmt_start = j + 1;
                        ended = true;
                        break;
                    }
                }
                if !ended {
                    return None;
                }
            }
            '{' => {
                let header = text.get(stmt_start..i).unwrap_or("").trim();
                stack.push(header_kind(header));
                stmt_start = i + 1;
            }
            '}' => {
                stack.pop();
                stmt_start = i + 1;
            }
            '\n' => stmt_start = i + 1,
            _ => {}
        }
    }
    Some((stack, text.get(stmt_start..).unwrap_or("")))
}

fn header_kind(header: &str) -> Open {
    if header.ends_with('=') || header.contains('=') {
        return Open { kind: "value".into(), name: None };
    }
    let mut words = header.split_whitespace();
    let first = words.next().unwrap_or("");
    match first {
        "allow" | "expect" => Open { kind: "flow".into(), name: None },
        "route" => Open { kind: "route".into(), name: None },
        kind => Open { kind: kind.to_string(), name: words.next().map(str::to_string) },
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/'
}

fn item(label: impl Into<String>, kind: CompletionItemKind, detail: Option<String>, range: Range) -> CompletionItem {
    let label = label.into();
    CompletionItem {
        label: label.clone(),
        kind: Some(kind),
        detail,
        text_edit: Some(CompletionTextEdit::Edit(TextEdit { range, new_text: label })),
        ..CompletionItem::default()
    }
}

/// Completions at byte `offset` of `text`. `word_range` turns the byte
/// range of the word being typed into the range to replace.
pub fn complete(
    text: &str,
    offset: usize,
    names: Option<&Names>,
    word_range: impl Fn(usize, usize) -> Range,
) -> Vec<CompletionItem> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let Some((stack, stmt)) = context(before) else { return Vec::new() };
    let word_len = stmt.chars().rev().take_while(|c| is_name_char(*c)).map(char::len_utf8).sum::<usize>();
    let word = stmt.get(stmt.len() - word_len..).unwrap_or("");
    let head = stmt.get(..stmt.len() - word_len).unwrap_or("");
    let range = word_range(offset - word_len, offset);
    let namespace = stack.iter().rev().find(|o| o.kind == "namespace").and_then(|o| o.name.clone());
    let block = stack.last().map_or("", |o| o.kind.as_str());
    let empty = Names::default();
    let names = names.unwrap_or(&empty);
    let trimmed = head.trim_start();

    // After `NAME:` in a flow or a route: the ports (or listeners) of NAME.
    if let Some(target_text) = head.strip_suffix(':')
        && (is_flow(trimmed) || trimmed.starts_with("route"))
    {
        let target: String = {
            let rev: String = target_text.chars().rev().take_while(|c| is_name_char(*c)).collect();
            rev.chars().rev().collect()
        };
        let (ns, name) = match target.split_once('/') {
            Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
            None => (namespace.clone(), target.clone()),
        };
        let member = ns.and_then(|ns| names.namespaces.get(&ns)?.get(&name));
        return member
            .map(|m| {
                let kind = if m.gateway { CompletionItemKind::FIELD } else { CompletionItemKind::PROPERTY };
                m.ports.iter().map(|(p, d)| item(p, kind, Some(d.clone()), range)).collect()
            })
            .unwrap_or_default();
    }

    // An endpoint of a flow, a route's target or an `except` list.
    let endpoint = is_flow(trimmed)
        && (trimmed.trim_end().ends_with("->")
            || ends_with_word(trimmed, "allow")
            || ends_with_word(trimmed, "deny")
            || ends_with_word(trimmed, "except")
            || trimmed.contains("except [")
                && (trimmed.trim_end().ends_with('[') || trimmed.trim_end().ends_with(',')));
    let route_target = trimmed.starts_with("route") && trimmed.trim_end().ends_with("->");
    if endpoint || route_target {
        let source = !trimmed.contains("->");
        return endpoints(names, namespace.as_deref(), word, source && !route_target, range);
    }

    // After `key =`: the words the attribute takes.
    if let Some(key) = attribute_key(head) {
        return words_of(block, key)
            .into_iter()
            .map(|w| item(w, CompletionItemKind::ENUM_MEMBER, None, range))
            .collect();
    }

    // The start of a statement: what the block may contain.
    if !head.trim().is_empty() && !head.trim_end().ends_with(',') {
        if head.trim() == "expect" {
            return ["allow", "deny"].iter().map(|w| item(*w, CompletionItemKind::KEYWORD, None, range)).collect();
        }
        return Vec::new();
    }
    let Some(shape) = shape_of(block) else { return Vec::new() };
    let mut out: Vec<CompletionItem> = Vec::new();
    for a in shape.attrs {
        out.push(item(*a, CompletionItemKind::PROPERTY, Some(format!("attribute of {}", shape.what)), range));
    }
    for b in shape.blocks {
        out.push(item(*b, CompletionItemKind::STRUCT, Some("block".into()), range));
    }
    if shape.flows {
        for k in ["allow", "expect allow", "expect deny"] {
            out.push(item(k, CompletionItemKind::KEYWORD, Some("flow".into()), range));
        }
    }
    if shape.routes {
        out.push(item("route", CompletionItemKind::KEYWORD, None, range));
    }
    if block.is_empty() {
        for k in ["import", "let"] {
            out.push(item(k, CompletionItemKind::KEYWORD, None, range));
        }
    }
    out
}

fn is_flow(stmt: &str) -> bool {
    stmt.starts_with("allow ") || stmt.starts_with("expect allow ") || stmt.starts_with("expect deny ")
}

fn ends_with_word(s: &str, w: &str) -> bool {
    let s = s.trim_end();
    s.strip_suffix(w).is_some_and(|rest| rest.is_empty() || rest.ends_with(char::is_whitespace))
}

/// `key` when `head` ends inside the value of `key = ...` (the last
/// attribute of the statement).
fn attribute_key(head: &str) -> Option<&str> {
    let mut depth = 0i32;
    let mut last_sep = 0;
    for (i, c) in head.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            ',' if depth == 0 => last_sep = i + 1,
            _ => {}
        }
    }
    let seg = head.get(last_sep..)?;
    let (key, _) = seg.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(key)
}

fn endpoints(names: &Names, here: Option<&str>, word: &str, source: bool, range: Range) -> Vec<CompletionItem> {
    let member_item = |label: String, m: &Member| {
        let kind = if m.gateway { CompletionItemKind::INTERFACE } else { CompletionItemKind::CLASS };
        item(label, kind, Some(if m.gateway { "gateway" } else { "workload" }.into()), range)
    };
    // `ns/` typed: that namespace's members, qualified.
    if let Some((ns, _)) = word.split_once('/') {
        return names
            .namespaces
            .get(ns)
            .map(|ms| ms.iter().map(|(n, m)| member_item(format!("{ns}/{n}"), m)).collect())
            .unwrap_or_default();
    }
    let mut out: Vec<CompletionItem> = Vec::new();
    if let Some(ms) = here.and_then(|h| names.namespaces.get(h)) {
        out.extend(ms.iter().map(|(n, m)| member_item(n.clone(), m)));
    }
    for ns in names.namespaces.keys().filter(|n| Some(n.as_str()) != here) {
        out.push(item(format!("{ns}/"), CompletionItemKind::MODULE, Some("namespace".into()), range));
    }
    if source {
        out.push(item("world", CompletionItemKind::KEYWORD, Some("outside the cluster".into()), range));
        for ns in names.namespaces.keys() {
            out.push(item(
                format!("namespace({ns})"),
                CompletionItemKind::MODULE,
                Some("every workload".into()),
                range,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(text: &str) -> Vec<String> {
        let mut names = Names::default();
        let mut demo = BTreeMap::new();
        demo.insert("api".to_string(), Member { gateway: false, ports: vec![("http".into(), "80/http".into())] });
        demo.insert("gw".to_string(), Member { gateway: true, ports: vec![("web".into(), "listener 80".into())] });
        names.namespaces.insert("demo".into(), demo);
        names.namespaces.insert("other".into(), BTreeMap::new());
        complete(text, text.len(), Some(&names), |_, _| Range::default()).into_iter().map(|i| i.label).collect()
    }

    #[test]
    fn contexts() {
        assert_eq!(labels("namespace demo {\n  allow api -> api:"), ["http"]);
        assert_eq!(labels("namespace demo {\n  allow api -> demo/gw:w"), ["web"]);
        assert_eq!(labels("namespace demo {\n  allow gw -> a"), ["api", "gw", "other/"]);
        assert!(labels("namespace demo {\n  allow ").contains(&"world".to_string()));
        assert_eq!(labels("allow demo/"), ["demo/api", "demo/gw"]);
        assert_eq!(
            labels("namespace demo { workload api { port http { protocol = "),
            ["tcp", "udp", "http", "grpc", "tls"]
        );
        assert!(
            labels("namespace demo {\n  allow a -> b {\n    http { methods = [GET, ").contains(&"POST".to_string())
        );
        assert!(labels("namespace demo {\n  workload api {\n    s").contains(&"service_account".to_string()));
        assert!(labels("namespace demo {\n  ").contains(&"expect deny".to_string()));
        assert!(labels("").contains(&"import".to_string()));
        assert!(labels("// allow ").is_empty());
        assert!(labels("import \"std/").is_empty());
        assert_eq!(labels("namespace demo {\n  expect "), ["allow", "deny"]);
    }
}
