//! `ztp lsp`: a language server over standard input and output.
//!
//! This file owns the main loop and the dispatch of requests and
//! notifications; each concern has its own file: [`transport`] (framing and
//! recovery from bad input), [`documents`] (text sync, UTF-16 positions),
//! [`analysis`] (the compiler on the unsaved buffers, diagnostics),
//! [`navigate`] (definition, references, outline), [`hover`], [`complete`]
//! and [`embedded`] (the stdlib and code pages as files an editor opens).
//!
//! The loop is synchronous. A change marks its program dirty; the check
//! runs once no message has arrived for [`DEBOUNCE`], so a burst of edits
//! costs one check. Its first half (through lowering) is published at once;
//! the second (emitting, name clashes, `expect` lines) runs when the queue
//! is empty, and publishes only the files whose diagnostics changed. A
//! request that needs the program checks the dirty programs first, so
//! answers never lag behind the text. No message, however malformed, ends
//! the loop: only `exit` or the end of the input does.

mod analysis;
mod complete;
mod documents;
mod embedded;
mod hover;
mod navigate;
pub mod transport;
mod uri;

use documents::{Document, Documents};
use lsp_server::{ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types as lsp;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Duration;
use transport::Incoming;

/// How long the queue must stay quiet after a change before the check.
pub const DEBOUNCE: Duration = Duration::from_millis(30);

/// Serves on standard input and output until `exit` or the input's end.
pub fn run() -> ExitCode {
    let incoming = transport::reader(std::io::stdin());
    let (out, writer) = transport::writer(std::io::stdout());
    let code = Server::new(out).serve(&incoming);
    let _ = writer.join();
    code
}

type Answer = Result<Value, (ErrorCode, String)>;

struct Server {
    out: Sender<String>,
    docs: Documents,
    /// Programs by directory.
    programs: BTreeMap<PathBuf, analysis::Program>,
    /// Programs to check again.
    dirty: BTreeSet<PathBuf>,
    /// Programs whose check still has its second half to run.
    unfinished: BTreeSet<PathBuf>,
    /// Names of each program's latest resolved version, for completion
    /// while the text does not parse.
    names: BTreeMap<PathBuf, complete::Names>,
    embedded: Option<embedded::Embedded>,
    /// Replaced analyses, freed when the queue is empty (see
    /// [`analysis::Program::analyze`]); never more than [`GARBAGE`].
    garbage: Vec<analysis::Leftover>,
    shutdown: bool,
}

/// How many replaced analyses may wait to be freed: a user who never
/// pauses typing must not grow the server without bound.
const GARBAGE: usize = 2;

fn params<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, (ErrorCode, String)> {
    serde_json::from_value(v).map_err(|e| (ErrorCode::InvalidParams, format!("invalid params: {e}")))
}

fn to_value<T: serde::Serialize>(v: T) -> Answer {
    serde_json::to_value(v).map_err(|e| (ErrorCode::InternalError, e.to_string()))
}

impl Server {
    fn new(out: Sender<String>) -> Server {
        Server {
            out,
            docs: Documents::default(),
            programs: BTreeMap::new(),
            dirty: BTreeSet::new(),
            unfinished: BTreeSet::new(),
            names: BTreeMap::new(),
            embedded: embedded::Embedded::materialize(),
            garbage: Vec::new(),
            shutdown: false,
        }
    }

    fn send(&self, m: Message) {
        let _ = self.out.send(transport::encode(&m));
    }

    fn respond(&self, id: RequestId, answer: Answer) {
        let r = match answer {
            Ok(v) => Response { id, response_result: Ok(v) },
            Err((code, message)) => Response::new_err(id, code as i32, message),
        };
        self.send(Message::Response(r));
    }

    fn invalid(&self, id: Option<RequestId>, code: i32, message: &str) {
        match id {
            Some(id) => self.send(Message::Response(Response::new_err(id, code, message.to_string()))),
            None => {
                let _ = self.out.send(transport::error_without_id(code, message));
            }
        }
    }

    fn notify(&self, method: &str, params: impl serde::Serialize) {
        let params = serde_json::to_value(params).unwrap_or(Value::Null);
        self.send(Message::Notification(Notification { method: method.into(), params }));
    }

    fn serve(mut self, rx: &Receiver<Incoming>) -> ExitCode {
        if !self.initialize(rx) {
            return ExitCode::from(1);
        }
        loop {
            let next = if !self.dirty.is_empty() {
                match rx.recv_timeout(DEBOUNCE) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        self.check_dirty();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else if !self.garbage.is_empty() {
                match rx.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => {
                        self.garbage.clear();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else if let Some(dir) = self.unfinished.first().cloned() {
                match rx.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => {
                        self.unfinished.remove(&dir);
                        self.finish(&dir);
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                }
            };
            match next {
                Incoming::Invalid { id, code, message } => self.invalid(id, code, &message),
                Incoming::Message(Message::Request(r)) => self.request(r),
                Incoming::Message(Message::Notification(n)) if n.method == "exit" => {
                    return ExitCode::from(if self.shutdown { 0 } else { 1 });
                }
                Incoming::Message(Message::Notification(n)) => self.notification(n),
                Incoming::Message(Message::Response(_)) => {}
            }
        }
        ExitCode::from(if self.shutdown { 0 } else { 1 })
    }

    /// Waits for `initialize` and answers it; false if the input ends
    /// (or `exit` comes) first.
    fn initialize(&mut self, rx: &Receiver<Incoming>) -> bool {
        loop {
            match rx.recv() {
                Err(_) => return false,
                Ok(Incoming::Invalid { id, code, message }) => self.invalid(id, code, &message),
                Ok(Incoming::Message(Message::Request(r))) if r.method == "initialize" => {
                    self.respond(r.id, to_value(capabilities()));
                    return true;
                }
                Ok(Incoming::Message(Message::Request(r))) => {
                    self.respond(r.id, Err((ErrorCode::ServerNotInitialized, "the server is not initialized".into())))
                }
                Ok(Incoming::Message(Message::Notification(n))) if n.method == "exit" => return false,
                Ok(Incoming::Message(_)) => {}
            }
        }
    }

    fn request(&mut self, r: Request) {
        let Request { id, method, params } = r;
        if self.shutdown {
            self.respond(id, Err((ErrorCode::InvalidRequest, "the server is shutting down".into())));
            return;
        }
        // The handlers do not panic; this is the net under that promise,
        // so one bad request never takes the server down.
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.answer(&method, params)))
            .unwrap_or_else(|_| Err((ErrorCode::InternalError, format!("internal error in `{method}`"))));
        self.respond(id, answer);
    }

    fn answer(&mut self, method: &str, p: Value) -> Answer {
        match method {
            "initialize" => Err((ErrorCode::InvalidRequest, "the server is already initialized".into())),
            "shutdown" => {
                self.shutdown = true;
                Ok(Value::Null)
            }
            "textDocument/formatting" => {
                let p: lsp::DocumentFormattingParams = params(p)?;
                to_value(self.formatting(&p.text_document.uri))
            }
            "textDocument/documentSymbol" => {
                let p: lsp::DocumentSymbolParams = params(p)?;
                to_value(self.symbols(&p.text_document.uri))
            }
            "textDocument/definition" => {
                let p: lsp::GotoDefinitionParams = params(p)?;
                let at = p.text_document_position_params;
                let found = self.with_program(&at.text_document.uri, at.position, |a, loc, id, offset| {
                    navigate::definition(a, loc, id, offset)
                });
                to_value(found.filter(|v| !v.is_empty()))
            }
            "textDocument/references" => {
                let p: lsp::ReferenceParams = params(p)?;
                let at = p.text_document_position;
                let decl = p.context.include_declaration;
                let found = self.with_program(&at.text_document.uri, at.position, |a, loc, id, offset| {
                    navigate::references(a, loc, id, offset, decl)
                });
                to_value(found.filter(|v| !v.is_empty()))
            }
            "textDocument/hover" => {
                let p: lsp::HoverParams = params(p)?;
                to_value(self.hover(
                    &p.text_document_position_params.text_document.uri,
                    p.text_document_position_params.position,
                ))
            }
            "textDocument/completion" => {
                let p: lsp::CompletionParams = params(p)?;
                let at = p.text_document_position;
                to_value(self.completion(&at.text_document.uri, at.position).map(lsp::CompletionResponse::Array))
            }
            _ => Err((ErrorCode::MethodNotFound, format!("unknown method `{method}`"))),
        }
    }

    fn notification(&mut self, n: Notification) {
        match n.method.as_str() {
            "textDocument/didOpen" => {
                let Ok(p) = params::<lsp::DidOpenTextDocumentParams>(n.params) else { return };
                let d = p.text_document;
                let doc = Document::new(d.uri, d.text, d.version);
                let path = doc.path.clone();
                self.docs.open(doc);
                self.changed(path.as_deref());
            }
            "textDocument/didChange" => {
                let Ok(p) = params::<lsp::DidChangeTextDocumentParams>(n.params) else { return };
                let Some(doc) = self.docs.get_mut(&p.text_document.uri) else { return };
                doc.apply(p.content_changes, p.text_document.version);
                let path = doc.path.clone();
                self.changed(path.as_deref());
            }
            "textDocument/didClose" => {
                let Ok(p) = params::<lsp::DidCloseTextDocumentParams>(n.params) else { return };
                let Some(doc) = self.docs.close(&p.text_document.uri) else { return };
                self.changed(doc.path.as_deref());
                self.drop_unwatched();
            }
            "workspace/didChangeWatchedFiles" => {
                self.dirty.extend(self.programs.keys().cloned());
            }
            _ => {}
        }
    }

    /// Marks the programs a changed file belongs to as dirty: its own
    /// directory's, and any other that reads it (by an import).
    fn changed(&mut self, path: Option<&Path>) {
        let Some(path) = path else { return };
        if self.embedded.as_ref().is_some_and(|e| e.contains(path)) {
            return;
        }
        if let Some(dir) = path.parent() {
            self.programs.entry(dir.to_path_buf()).or_default();
            self.dirty.insert(dir.to_path_buf());
        }
        for (dir, p) in &self.programs {
            if p.has_file(path) {
                self.dirty.insert(dir.clone());
            }
        }
    }

    /// Forgets programs with no open file, clearing what was published.
    fn drop_unwatched(&mut self) {
        let open: BTreeSet<PathBuf> =
            self.docs.iter().filter_map(|d| d.path.as_ref()?.parent().map(Path::to_path_buf)).collect();
        let gone: Vec<PathBuf> = self.programs.keys().filter(|d| !open.contains(*d)).cloned().collect();
        for dir in gone {
            if let Some(p) = self.programs.remove(&dir) {
                for uri in p.published.into_iter().filter(|(_, ds)| !ds.is_empty()).map(|(u, _)| u) {
                    self.publish(&uri, Vec::new());
                }
            }
            self.dirty.remove(&dir);
            self.unfinished.remove(&dir);
            self.names.remove(&dir);
        }
    }

    fn publish(&self, uri: &str, diagnostics: Vec<lsp::Diagnostic>) {
        let Ok(uri) = uri.parse::<lsp::Uri>() else { return };
        let version = self.docs.get(&uri).map(|d| d.version);
        self.notify("textDocument/publishDiagnostics", lsp::PublishDiagnosticsParams { uri, diagnostics, version });
    }

    /// Runs the first half of the check of every dirty program and
    /// publishes it.
    fn check_dirty(&mut self) {
        let open = self.docs.texts();
        for dir in std::mem::take(&mut self.dirty) {
            let Some(p) = self.programs.get_mut(&dir) else { continue };
            self.garbage.push(p.analyze(&dir, &open));
            if let Some(program) = p.analysis.as_ref().and_then(|a| a.program()) {
                self.names.insert(dir.clone(), complete::Names::of(program));
            }
            if p.analysis.as_ref().is_some_and(|a| a.unfinished()) {
                self.unfinished.insert(dir.clone());
            } else {
                self.unfinished.remove(&dir);
            }
            self.publish_program(&dir, false);
        }
        if self.garbage.len() > GARBAGE {
            self.garbage.clear();
        }
    }

    fn finish(&mut self, dir: &Path) {
        let Some(p) = self.programs.get_mut(dir) else { return };
        let Some(a) = p.analysis.as_mut() else { return };
        a.finish();
        self.publish_program(dir, true);
    }

    /// Publishes a program's diagnostics: every file whose diagnostics
    /// changed, every open file (unless `changed_only`), and an empty list
    /// for files that had some and have left the program.
    fn publish_program(&mut self, dir: &Path, changed_only: bool) {
        let Some(p) = self.programs.get(dir) else { return };
        let new = p.analysis.as_ref().map(|a| analysis::by_file(a, self.embedded.as_ref())).unwrap_or_default();
        let mut sends: Vec<(String, Vec<lsp::Diagnostic>)> = Vec::new();
        for (uri, ds) in &new {
            let open = uri.parse::<lsp::Uri>().ok().is_some_and(|u| self.docs.get(&u).is_some());
            let same = p.published.get(uri) == Some(ds);
            if !same || (open && !changed_only) {
                sends.push((uri.clone(), ds.clone()));
            }
        }
        for (uri, ds) in &p.published {
            if !new.contains_key(uri) && !ds.is_empty() {
                sends.push((uri.clone(), Vec::new()));
            }
        }
        for (uri, ds) in sends {
            self.publish(&uri, ds);
        }
        if let Some(p) = self.programs.get_mut(dir) {
            p.published = new;
        }
    }

    fn formatting(&self, uri: &lsp::Uri) -> Option<Vec<lsp::TextEdit>> {
        let doc = self.docs.get(uri)?;
        let name = doc.path.as_ref().map_or_else(|| uri.as_str().to_string(), |p| p.display().to_string());
        match crate::driver::format_text(&name, &doc.text) {
            crate::driver::Formatted::Ok(text) if text != doc.text => {
                let range = doc.lines.range(&doc.text, 0, doc.text.len());
                Some(vec![lsp::TextEdit { range, new_text: text }])
            }
            _ => Some(Vec::new()),
        }
    }

    fn symbols(&self, uri: &lsp::Uri) -> Option<Vec<lsp::DocumentSymbol>> {
        let doc = self.docs.get(uri)?;
        let parsed = crate::syntax::parse(crate::source::SourceId(0), &doc.text);
        Some(navigate::symbols(&parsed.file?, &doc.text))
    }

    /// The program a document belongs to, checked up to date, with the
    /// document's source id and the offset of `position` in it.
    fn locate(&mut self, uri: &lsp::Uri, position: lsp::Position) -> Option<(PathBuf, crate::source::SourceId, usize)> {
        if !self.dirty.is_empty() {
            self.check_dirty();
        }
        let doc = self.docs.get(uri)?;
        let path = doc.path.clone()?;
        let offset = doc.offset(position);
        let dir = path.parent()?.to_path_buf();
        let a = self.programs.get(&dir)?.analysis.as_ref()?;
        let id = a.checked.sources.find_file(&path)?;
        Some((dir, id, offset))
    }

    fn with_program<T>(
        &mut self,
        uri: &lsp::Uri,
        position: lsp::Position,
        f: impl FnOnce(&crate::driver::Analysis, &analysis::Locator<'_>, crate::source::SourceId, usize) -> T,
    ) -> Option<T> {
        let (dir, id, offset) = self.locate(uri, position)?;
        let a = self.programs.get(&dir)?.analysis.as_ref()?;
        let at = analysis::Locator::new(&a.checked.sources, self.embedded.as_ref());
        Some(f(a, &at, id, offset))
    }

    fn hover(&mut self, uri: &lsp::Uri, position: lsp::Position) -> Option<lsp::Hover> {
        let (dir, id, offset) = self.locate(uri, position)?;
        // A flow's hover judges the emitted objects: the check must be whole.
        if self.unfinished.remove(&dir) {
            self.finish(&dir);
        }
        let p = self.programs.get_mut(&dir)?;
        let a = p.analysis.as_ref()?;
        let (text, span) = hover::hover(a, &mut p.model, id, offset)?;
        let range = analysis::Locator::new(&a.checked.sources, None).range(span);
        Some(lsp::Hover {
            contents: lsp::HoverContents::Markup(lsp::MarkupContent { kind: lsp::MarkupKind::Markdown, value: text }),
            range: Some(range),
        })
    }

    fn completion(&mut self, uri: &lsp::Uri, position: lsp::Position) -> Option<Vec<lsp::CompletionItem>> {
        if !self.dirty.is_empty() {
            self.check_dirty();
        }
        let doc = self.docs.get(uri)?;
        let offset = doc.offset(position);
        let names = doc.path.as_ref().and_then(|p| self.names.get(p.parent()?));
        let lines = &doc.lines;
        let text = &doc.text;
        Some(complete::complete(text, offset, names, |lo, hi| lines.range(text, lo, hi)))
    }
}

fn capabilities() -> lsp::InitializeResult {
    lsp::InitializeResult {
        capabilities: lsp::ServerCapabilities {
            position_encoding: Some(lsp::PositionEncodingKind::UTF16),
            text_document_sync: Some(lsp::TextDocumentSyncCapability::Options(lsp::TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(lsp::TextDocumentSyncKind::INCREMENTAL),
                ..Default::default()
            })),
            document_formatting_provider: Some(lsp::OneOf::Left(true)),
            definition_provider: Some(lsp::OneOf::Left(true)),
            references_provider: Some(lsp::OneOf::Left(true)),
            hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
            document_symbol_provider: Some(lsp::OneOf::Left(true)),
            completion_provider: Some(lsp::CompletionOptions {
                trigger_characters: Some(vec![":".into(), "/".into(), " ".into()]),
                ..Default::default()
            }),
            ..Default::default()
        },
        server_info: Some(lsp::ServerInfo { name: "ztp".into(), version: Some(env!("CARGO_PKG_VERSION").into()) }),
    }
}
