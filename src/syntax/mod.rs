//! The front door of the compiler: text → AST + trivia + syntax diagnostics.
//!
//! This is the only module that knows pest. [`parse`] guards against hostile
//! input before pest sees it (nesting deeper than [`MAX_DEPTH`] is refused, so
//! no later recursive stage can overflow the stack), reports unterminated
//! strings itself, and recovers from a syntax error by masking the offending
//! line and parsing again, so that several mistakes are reported at once.
//! pest's rule names never reach a message: [`describe_rule`] names what was
//! expected in the user's terms.

mod build;

use crate::ast::{Comment, File, Trivia};
use crate::diag::{Diagnostic, codes, did_you_mean};
use crate::source::{SourceId, Span};
use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pairs;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/ztp.pest"]
struct ZtpParser;

/// How deeply `{`, `[` and `(` may nest. Real programs use four or five
/// levels; the limit keeps every recursive stage far from the stack's end.
pub const MAX_DEPTH: usize = 64;

/// At most this many syntax errors are reported per file.
const MAX_SYNTAX_ERRORS: usize = 10;

/// The result of parsing one file. `file` is `None` when the file has syntax
/// errors; `diagnostics` then says why.
#[derive(Debug)]
pub struct Parsed {
    pub file: Option<File>,
    pub trivia: Trivia,
    pub diagnostics: Vec<Diagnostic>,
}

/// The keywords and block kinds a statement can start with, for did-you-mean
/// on syntax errors.
const STATEMENT_WORDS: &[&str] = &[
    "import",
    "let",
    "allow",
    "expect",
    "route",
    "namespace",
    "workload",
    "gateway",
    "waypoint",
    "listener",
    "port",
    "selector",
    "mesh",
    "cluster",
    "http",
];

/// Parses one text: its tree, its comments and blank lines (for the
/// formatter), and every syntax error found.
pub fn parse(source: SourceId, text: &str) -> Parsed {
    parse_full(source, text, true)
}

/// [`parse`] without the comments: what the compiler needs.
pub fn parse_tree(source: SourceId, text: &str) -> Parsed {
    parse_full(source, text, false)
}

/// Parses many texts, on as many threads as the machine has cores, each
/// result in its input's place; `trivia` says whether comments are
/// collected (only the formatter needs them). A text that parses takes one
/// pass of pest; the texts that do not are parsed again one after another,
/// with pest's error detail on (a process-wide switch), so the messages are
/// the same as from [`parse`].
pub fn parse_all(inputs: &[(SourceId, &str)], trivia: bool) -> Vec<Parsed> {
    parse_each(inputs, trivia, |_, parsed| parsed)
}

/// [`parse_all`], handing each text's parse to `then` (with the text's
/// index) on the thread that parsed it, so a caller that only needs what
/// it makes of a tree never holds every tree at once.
pub fn parse_each<R: Send>(
    inputs: &[(SourceId, &str)],
    trivia: bool,
    then: impl Fn(usize, Parsed) -> R + Sync,
) -> Vec<R> {
    pest::set_error_detail(false);
    let indexed: Vec<(usize, SourceId, &str)> = inputs.iter().enumerate().map(|(i, &(s, t))| (i, s, t)).collect();
    let clean = crate::par::map(&indexed, |&(i, source, text)| parse_clean(source, text, trivia).map(|p| then(i, p)));
    indexed
        .iter()
        .zip(clean)
        .map(|(&(i, source, text), done)| match done.flatten() {
            Some(r) => r,
            None => then(i, parse_full(source, text, trivia)),
        })
        .collect()
}

/// One pass of pest without error detail: `None` when the text has any
/// syntax error (the caller parses it again for the messages).
fn parse_clean(source: SourceId, text: &str, with_trivia: bool) -> Option<Parsed> {
    let mut diagnostics = Vec::new();
    if prescan(source, text, &mut diagnostics) || !diagnostics.is_empty() {
        return None;
    }
    let pairs = ZtpParser::parse(Rule::file, text).ok()?;
    Some(tree(source, text, pairs, with_trivia, diagnostics))
}

/// The tree of a text pest accepted, with the builder's diagnostics.
fn tree(
    source: SourceId,
    text: &str,
    pairs: Pairs<'_, Rule>,
    with_trivia: bool,
    mut diagnostics: Vec<Diagnostic>,
) -> Parsed {
    let trivia = if with_trivia { trivia(source, text, pairs.clone()) } else { Trivia::default() };
    let mut b = build::Builder { source, diags: Vec::new() };
    let file = b.file(pairs);
    let ok = b.diags.is_empty();
    diagnostics.extend(b.diags);
    Parsed { file: if ok { file } else { None }, trivia, diagnostics }
}

fn parse_full(source: SourceId, text: &str, with_trivia: bool) -> Parsed {
    let mut diagnostics = Vec::new();
    if prescan(source, text, &mut diagnostics) {
        return Parsed { file: None, trivia: Trivia::default(), diagnostics };
    }
    // A copy in which lines with syntax errors are blanked, to find the next.
    let mut masked = text.to_string();
    let mut last_error_line = None;
    loop {
        // Recording every attempt for the error message costs a quarter of
        // the parse; a text that parses needs none, so the detail is only
        // turned on to parse a failing text again.
        pest::set_error_detail(false);
        let mut result = ZtpParser::parse(Rule::file, &masked);
        if result.is_err() {
            pest::set_error_detail(true);
            result = ZtpParser::parse(Rule::file, &masked);
        }
        match result {
            Ok(pairs) => {
                if diagnostics.is_empty() {
                    return tree(source, text, pairs, with_trivia, diagnostics);
                }
                break;
            }
            Err(e) => {
                let pos = match e.location {
                    InputLocation::Pos(p) => p,
                    InputLocation::Span((p, _)) => p,
                };
                let line = line_of(&masked, pos);
                if last_error_line.is_some_and(|l| l >= line) {
                    break;
                }
                last_error_line = Some(line);
                diagnostics.push(syntax_error(source, &masked, pos, &e));
                if diagnostics.len() >= MAX_SYNTAX_ERRORS || !mask_line(&mut masked, pos) {
                    break;
                }
            }
        }
    }
    Parsed { file: None, trivia: Trivia::default(), diagnostics }
}

/// Comments, collected in one pass over the pairs.
fn trivia(source: SourceId, text: &str, pairs: Pairs<'_, Rule>) -> Trivia {
    let comments = pairs
        .flatten()
        .filter(|p| p.as_rule() == Rule::COMMENT)
        .map(|p| {
            let s = p.as_span();
            let line_start = text.get(..s.start()).and_then(|t| t.rfind('\n')).map_or(0, |i| i + 1);
            let own_line = text.get(line_start..s.start()).is_some_and(|t| t.trim().is_empty());
            Comment { text: p.as_str().trim_end().to_string(), span: Span::new(source, s.start(), s.end()), own_line }
        })
        .collect();
    let mut blank_lines = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > 0 && line.trim().is_empty() {
            blank_lines.push(offset);
        }
        offset += line.len();
    }
    Trivia { comments, blank_lines }
}

/// A lexical pass before pest: reports unterminated strings (the grammar
/// ends them at the line end, so parsing goes on) and refuses nesting deeper
/// than [`MAX_DEPTH`]. Returns whether the input is too deep to parse.
fn prescan(source: SourceId, text: &str, diags: &mut Vec<Diagnostic>) -> bool {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while bytes.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        Some(b'"') => break,
                        Some(b'\\') if bytes.get(i + 1).is_some_and(|&c| c != b'\n') => i += 2,
                        Some(b'\n') | None => {
                            diags.push(
                                Diagnostic::new(
                                    codes::UNTERMINATED_STRING,
                                    "unterminated string",
                                    Span::new(source, start, i),
                                    "this string has no closing `\"`",
                                )
                                .with_help("close the string with `\"` on the same line; strings cannot span lines"),
                            );
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    diags.push(
                        Diagnostic::new(
                            codes::TOO_DEEP,
                            format!("nesting deeper than {MAX_DEPTH} levels"),
                            Span::new(source, i, i + 1),
                            "too deep",
                        )
                        .with_help("ztp programs need a few levels of nesting; check for unbalanced brackets"),
                    );
                    return true;
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes().iter().take(pos).filter(|&&b| b == b'\n').count()
}

/// Replaces the line holding `pos` with spaces so that parsing can go on
/// after it. Braces that the line opens or closes are kept balanced (`_ {`
/// for each net opening, `}` for each net closing) so the lines after it
/// keep their structure. Returns false when there is nothing left to mask.
fn mask_line(text: &mut String, pos: usize) -> bool {
    let start = text.get(..pos).and_then(|t| t.rfind('\n')).map_or(0, |i| i + 1);
    let end = text.get(pos..).and_then(|t| t.find('\n')).map_or(text.len(), |i| pos + i);
    let Some(line) = text.get(start..end) else { return false };
    if line.trim().is_empty() {
        return false;
    }
    let (mut opens, mut closes) = (0i64, 0i64);
    let mut in_str = false;
    let mut prev = '\0';
    for c in line.chars() {
        match c {
            '"' if prev != '\\' => in_str = !in_str,
            '/' if !in_str && prev == '/' => break,
            '{' if !in_str => opens += 1,
            '}' if !in_str => {
                if opens > 0 {
                    opens -= 1;
                } else {
                    closes += 1;
                }
            }
            _ => {}
        }
        prev = c;
    }
    let mut replacement = String::new();
    for _ in 0..closes {
        replacement.push_str("} ");
    }
    for _ in 0..opens {
        replacement.push_str("_ { ");
    }
    let width = line.len();
    if replacement.len() > width {
        // Cannot keep offsets; mask without keeping structure.
        replacement.clear();
    }
    while replacement.len() < width {
        replacement.push(' ');
    }
    text.replace_range(start..end, &replacement);
    true
}

/// What a rule stands for, in the user's words. `None` for rules that are
/// never worth naming on their own.
fn describe_rule(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::file => "a statement",
        Rule::import => "`import`",
        Rule::let_decl => "`let`",
        Rule::flow | Rule::flow_keyword | Rule::kw_allow => "`allow`",
        Rule::kw_expect => "`expect`",
        Rule::kw_import => "`import`",
        Rule::kw_let => "`let`",
        Rule::kw_route => "`route`",
        Rule::kw_except => "`except`",
        Rule::kw_namespace => "`namespace`",
        Rule::kw_deny => "`deny`",
        Rule::route => "`route`",
        Rule::block => "a block",
        Rule::body | Rule::map => "`{`",
        Rule::attr => "an attribute",
        Rule::source | Rule::dest | Rule::world | Rule::ns_selector | Rule::qualified => "an endpoint",
        Rule::except => "`except`",
        Rule::target_list | Rule::list => "`[`",
        Rule::port_ref => "a port",
        Rule::bool => "a boolean",
        Rule::int => "a number",
        Rule::cidr => "a CIDR",
        Rule::ident => "a name",
        Rule::string => "a string",
        _ => return None,
    })
}

/// The thing found at `pos`, in words: a word, a symbol, or end of file.
fn found_at(text: &str, pos: usize) -> String {
    let rest = text.get(pos..).unwrap_or("");
    let Some(first) = rest.chars().next() else { return "end of file".into() };
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if is_word(first) {
        let word: String = rest.chars().take_while(|&c| is_word(c)).take(40).collect();
        format!("`{word}`")
    } else if first == '\n' {
        "end of line".into()
    } else if first == '"' {
        "a string".into()
    } else if first.is_control() || first == '\u{FEFF}' || !first.is_ascii() && !first.is_alphanumeric() {
        format!("the character U+{:04X}", u32::from(first))
    } else {
        format!("`{first}`")
    }
}

fn syntax_error(source: SourceId, text: &str, pos: usize, e: &pest::error::Error<Rule>) -> Diagnostic {
    let mut expected: Vec<String> = Vec::new();
    let mut value_expected = false;
    if let ErrorVariant::ParsingError { positives, .. } = &e.variant {
        expected.extend(positives.iter().filter_map(|r| describe_rule(*r)).map(String::from));
        value_expected = positives.contains(&Rule::cidr);
    }
    if let Some(attempts) = e.parse_attempts() {
        for t in attempts.expected_tokens() {
            // Literal punctuation (`{`, `->`, `=`); words are named by rules.
            // Where a value may start, `:` is only the IPv6 look-ahead.
            let token = t.to_string();
            let noise = ["//", "-", "_", ".", ","].contains(&token.as_str())
                || token.contains("..")
                || (value_expected && token.starts_with(':'));
            if token.chars().all(|c| c.is_ascii_punctuation()) && !noise {
                expected.push(if token == "\"" { "a string".to_string() } else { format!("`{token}`") });
            }
        }
    }
    expected.sort();
    expected.dedup();
    // Where any value may start, say so instead of listing every kind.
    if ["a CIDR", "a number", "a string"].iter().all(|k| expected.iter().any(|e| e == k)) {
        expected
            .retain(|e| !["`[`", "`{`", "a CIDR", "a boolean", "a name", "a number", "a string"].contains(&e.as_str()));
        expected.insert(0, "a value".into());
    }
    // Where any statement may start, say so instead of listing them all.
    if expected.iter().any(|e| e == "a block" || e == "a statement") {
        expected.retain(|e| e == "`}`" || e == "end of file");
        expected.insert(0, "a statement".into());
    }
    let end = text.trim_end_matches([' ', '\t', '\r', '\n']).len();
    let at_end = pos >= end;
    let found = if at_end { "end of file".to_string() } else { found_at(text, pos) };
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    let mut d = if at_end {
        // Point at the file's last character, not past it.
        let last = text.get(..end).and_then(|t| t.char_indices().last()).map_or(0, |(i, _)| i);
        let width = text.get(last..).and_then(|r| r.chars().next()).map_or(0, char::len_utf8);
        let mut d =
            Diagnostic::new(codes::SYNTAX, message, Span::new(source, last, last + width), "the file ends here");
        if let Some((open, c)) = unclosed(text) {
            d = d.with_secondary(Span::new(source, open, open + 1), format!("this `{c}` is never closed"));
        }
        d
    } else {
        let width = text.get(pos..).and_then(|r| r.chars().next()).map_or(0, char::len_utf8);
        Diagnostic::new(codes::SYNTAX, message, Span::new(source, pos, pos + width), "here")
    };
    // Did-you-mean on the word that starts the statement being parsed.
    let line_start = text.get(..pos).and_then(|t| t.rfind('\n')).map_or(0, |i| i + 1);
    let first_word: String = text
        .get(line_start..)
        .unwrap_or("")
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    if !STATEMENT_WORDS.contains(&first_word.as_str())
        && let Some(s) = did_you_mean(&first_word, STATEMENT_WORDS.iter().copied())
    {
        d = d.with_help(format!("did you mean `{s}`?"));
    }
    d
}

/// The innermost bracket still open at the end of `text`, if any (strings
/// and comments skipped).
fn unclosed(text: &str) -> Option<(usize, char)> {
    let mut stack = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' if chars.peek().is_some_and(|(_, n)| *n == '/') => {
                while chars.peek().is_some_and(|(_, n)| *n != '\n') {
                    chars.next();
                }
            }
            '"' => {
                while let Some((_, n)) = chars.next() {
                    match n {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '{' | '[' | '(' => stack.push((i, c)),
            '}' | ']' | ')' => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.pop()
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<&'static str> {
        parse(SourceId(0), text).diagnostics.iter().map(|d| d.code.as_str()).collect()
    }

    #[test]
    fn parses_the_sketch() {
        let p = parse(
            SourceId(0),
            r#"import "std/baseline"
mesh { trust_domain = "cluster.local", mtls = strict }
namespace demo {
  workload hello-app {
    port http { number = 8000, protocol = http }
  }
  allow hello-app -> "api.github.com":443
  allow 10.0.0.0/8 except [10.1.0.0/16] -> hello-app:http
  expect deny namespace(demo) except hello-app -> postgres:pg
}
"#,
        );
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        assert_eq!(p.file.unwrap().stmts.len(), 3);
    }

    #[test]
    fn reports_several_errors() {
        let text = "namespace a {\n  workload x { port p { number = } }\n  allow x -> :80\n  workload y {}\n}\n";
        let c = codes(text);
        assert!(c.len() >= 2, "{c:?}");
        assert!(c.iter().all(|c| *c == "Z0001"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("let x = {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(codes(&text), vec!["Z0004"]);
    }

    #[test]
    fn unterminated_string_is_reported_and_parsing_continues() {
        let c = codes("let a = \"abc\nlet b = 1 +\n");
        assert_eq!(c.first(), Some(&"Z0002"));
    }

    #[test]
    fn comments_are_collected() {
        let p = parse(SourceId(0), "// one\nlet a = 1 // two\n");
        let t: Vec<_> = p.trivia.comments.iter().map(|c| (c.text.as_str(), c.own_line)).collect();
        assert_eq!(t, vec![("// one", true), ("// two", false)]);
    }
}
