//! Showing diagnostics: ariadne reports for people, one JSON object per line
//! for tools. The only module that knows ariadne.

use super::{Diagnostic, Severity};
use crate::source::SourceMap;
use ariadne::{Config, IndexType, Label as ALabel, Report, ReportKind};
use serde::Serialize;
use std::ops::Range;

/// ariadne's view of every source. Building it indexes every line of every
/// file, so a batch of reports shares one.
fn cache(sources: &SourceMap) -> impl ariadne::Cache<String> {
    ariadne::sources(sources.iter().map(|(_, f)| (f.name.clone(), f.text.clone())).collect::<Vec<_>>())
}

/// Renders one diagnostic as ariadne shows it (`color` for terminals).
pub fn human(d: &Diagnostic, sources: &SourceMap, color: bool) -> String {
    render_with(d, sources, color, &mut cache(sources))
}

/// Renders many diagnostics over one source cache; each text is the same
/// as [`human`]'s.
pub fn human_all(ds: &[Diagnostic], sources: &SourceMap, color: bool) -> Vec<String> {
    let mut c = cache(sources);
    ds.iter().map(|d| render_with(d, sources, color, &mut c)).collect()
}

fn render_with(d: &Diagnostic, sources: &SourceMap, color: bool, cache: &mut impl ariadne::Cache<String>) -> String {
    let kind = match d.severity {
        Severity::Error => ReportKind::Error,
        Severity::Warning => ReportKind::Warning,
    };
    let span = |s: crate::source::Span| -> (String, Range<usize>) {
        let text = sources.text(s.source);
        let floor = |mut i: usize| {
            i = i.min(text.len());
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let lo = floor(s.lo);
        (sources.name(s.source).to_string(), lo..floor(s.hi).max(lo))
    };
    let config = Config::default().with_index_type(IndexType::Byte).with_color(color);
    let mut report =
        Report::build(kind, span(d.primary.span)).with_config(config).with_code(d.code).with_message(&d.message);
    // ariadne starts a new source group whenever a label's line is above the
    // previous label's, so labels go in in source order.
    let mut labels: Vec<&super::Label> = std::iter::once(&d.primary).chain(&d.secondary).collect();
    labels.sort_by_key(|l| (l.span.source, l.span.lo, l.span.hi));
    for l in labels {
        report = report.with_label(ALabel::new(span(l.span)).with_message(&l.message));
    }
    for h in &d.help {
        report = report.with_help(h);
    }
    for n in &d.notes {
        report = report.with_note(n);
    }
    let mut out = Vec::new();
    if report.finish().write(cache, &mut out).is_err() {
        // Rendering can only fail on a missing source; fall back to one line.
        return format!("{}[{}]: {} at {}\n", d.severity.as_str(), d.code, d.message, sources.location(d.primary.span));
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A position as tools want it: byte offset plus 1-based line and column.
#[derive(Serialize)]
struct Position {
    byte: usize,
    line: usize,
    column: usize,
}

#[derive(Serialize)]
struct JsonLabel {
    file: String,
    start: Position,
    end: Position,
    message: String,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'a str,
    severity: &'a str,
    message: &'a str,
    file: String,
    start: Position,
    end: Position,
    label: &'a str,
    secondary: Vec<JsonLabel>,
    help: &'a [String],
    notes: &'a [String],
}

fn position(sources: &SourceMap, span: crate::source::Span, at_end: bool) -> Position {
    let byte = if at_end { span.hi } else { span.lo };
    let (line, column) = sources.get(span.source).map(|f| f.line_col(byte)).unwrap_or((1, 1));
    Position { byte, line, column }
}

/// One diagnostic as a single line of JSON (no trailing newline).
pub fn json(d: &Diagnostic, sources: &SourceMap) -> String {
    let p = d.primary.span;
    let out = JsonDiagnostic {
        code: d.code.as_str(),
        severity: d.severity.as_str(),
        message: &d.message,
        file: sources.name(p.source).to_string(),
        start: position(sources, p, false),
        end: position(sources, p, true),
        label: &d.primary.message,
        secondary: d
            .secondary
            .iter()
            .map(|l| JsonLabel {
                file: sources.name(l.span.source).to_string(),
                start: position(sources, l.span, false),
                end: position(sources, l.span, true),
                message: l.message.clone(),
            })
            .collect(),
        help: &d.help,
        notes: &d.notes,
    };
    serde_json::to_string(&out).unwrap_or_else(|_| String::from("{}"))
}
