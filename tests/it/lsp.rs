//! `ztp lsp` driven as a child process over real JSON-RPC: the session a
//! client has on the examples and on broken files, and the input no client
//! should send (malformed frames and bodies, unknown methods, positions out
//! of range, deep nesting), after which the server must keep serving.
//! Responses are snapshotted with the file URIs made machine independent.

use crate::support::root;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// How long any one message may take before the test fails (a hang).
const PATIENCE: Duration = Duration::from_secs(60);

struct Client {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next_id: i64,
    /// URI → the latest diagnostics published.
    diagnostics: BTreeMap<String, Value>,
    /// Every publish, in order (URI and number of diagnostics).
    publishes: Vec<(String, usize, Option<i64>)>,
    cache: PathBuf,
}

fn read_message(r: &mut impl BufRead) -> Option<Value> {
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            length = v.parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// A `file:` URI as the server spells it.
fn file_uri(path: &Path) -> String {
    let mut out = String::from("file://");
    for b in path.to_str().unwrap().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    fn start(tag: &str) -> Client {
        let cache = std::env::temp_dir().join(format!("ztp-lsp-cache-{}-{tag}", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_ztp"))
            .arg("lsp")
            .env("XDG_CACHE_HOME", &cache)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            while let Some(m) = read_message(&mut stdout) {
                if tx.send(m).is_err() {
                    break;
                }
            }
        });
        let mut c = Client { child, stdin, rx, next_id: 0, diagnostics: BTreeMap::new(), publishes: Vec::new(), cache };
        let init = c.request("initialize", json!({"capabilities": {}, "processId": null}));
        assert!(init["result"]["capabilities"]["hoverProvider"] == json!(true), "{init}");
        c.notify("initialized", json!({}));
        c
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
        self.stdin.flush().unwrap();
    }

    fn send(&mut self, v: Value) {
        let body = v.to_string();
        self.raw(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// The next message, recording diagnostics.
    fn next(&mut self) -> Value {
        let m = self.rx.recv_timeout(PATIENCE).expect("the server stopped answering");
        if m["method"] == "textDocument/publishDiagnostics" {
            let uri = m["params"]["uri"].as_str().unwrap().to_string();
            let n = m["params"]["diagnostics"].as_array().map_or(0, Vec::len);
            self.publishes.push((uri.clone(), n, m["params"]["version"].as_i64()));
            self.diagnostics.insert(uri, m["params"]["diagnostics"].clone());
        }
        m
    }

    /// Reads until the response with `id`.
    fn response(&mut self, id: &Value) -> Value {
        loop {
            let m = self.next();
            if m.get("method").is_none() && &m["id"] == id {
                return m;
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = json!(self.next_id);
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(&id)
    }

    fn open(&mut self, path: &Path, text: &str) -> String {
        let uri = file_uri(path);
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "ztp", "version": 1, "text": text}}),
        );
        uri
    }

    fn at(&mut self, method: &str, uri: &str, line: u32, character: u32) -> Value {
        let mut params = json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}});
        if method == "textDocument/references" {
            params["context"] = json!({"includeDeclaration": true});
        }
        self.request(method, params)
    }

    /// Waits until the check of `uri`'s program is complete (a hover runs
    /// both halves), so that `diagnostics` is final.
    fn settle(&mut self, uri: &str) {
        self.at("textDocument/hover", uri, 0, 0);
    }

    fn stop(mut self) -> Option<i32> {
        let r = self.request("shutdown", Value::Null);
        assert_eq!(r["result"], Value::Null, "{r}");
        self.notify("exit", Value::Null);
        let status = wait(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.cache);
        status
    }
}

fn wait(child: &mut Child) -> Option<i32> {
    for _ in 0..600 {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the server did not exit");
}

/// The position (line, UTF-16 column) of the `nth` occurrence of `needle`.
fn find(text: &str, needle: &str, nth: usize) -> (u32, u32) {
    let (offset, _) = text.match_indices(needle).nth(nth).unwrap_or_else(|| panic!("{needle:?} not found"));
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let col = before.rsplit('\n').next().unwrap().encode_utf16().count() as u32;
    (line, col)
}

/// Machine-independent JSON: URIs of the repository, the scratch
/// directories and the cache lose their prefixes.
fn normal(c: &Client, v: &Value, scratch: Option<&Path>) -> String {
    let mut text = serde_json::to_string_pretty(v).unwrap();
    let cache = file_uri(&c.cache.join("ztp").join(env!("CARGO_PKG_VERSION")));
    text = text.replace(&cache, "file://<cache>");
    if let Some(s) = scratch {
        text = text.replace(&file_uri(s), "file://<scratch>");
    }
    text.replace(&file_uri(&root()), "file://<repo>")
}

/// `L:C-L:C`, 1-based, of an LSP range.
fn range_text(r: &Value) -> String {
    let p = |k: &str| format!("{}:{}", r[k]["line"].as_i64().unwrap() + 1, r[k]["character"].as_i64().unwrap() + 1);
    format!("{}-{}", p("start"), p("end"))
}

/// A result as a person reads it: locations one per line, a hover as its
/// range and text, anything else as JSON.
fn render(c: &Client, v: &Value) -> String {
    if let Some(items) = v.as_array()
        && !items.is_empty()
        && items.iter().all(|i| i.get("uri").is_some() && i.get("range").is_some())
    {
        let lines: Vec<String> = items
            .iter()
            .map(|i| format!("{}:{}", normal(c, &i["uri"], None).trim_matches('"'), range_text(&i["range"])))
            .collect();
        return lines.join("\n");
    }
    if let Some(value) = v.get("contents").and_then(|c| c.get("value")).and_then(Value::as_str) {
        return format!("{}\n{value}", range_text(&v["range"]));
    }
    normal(c, v, None)
}

/// Document symbols as an indented tree: kind, name, range.
fn outline(v: &Value, depth: usize, out: &mut String) {
    for s in v.as_array().into_iter().flatten() {
        let detail = s["detail"].as_str().map(|d| format!(" ({d})")).unwrap_or_default();
        out.push_str(&format!(
            "{}{} {}{detail} {} name {}\n",
            "  ".repeat(depth),
            s["kind"],
            s["name"].as_str().unwrap(),
            range_text(&s["range"]),
            range_text(&s["selectionRange"])
        ));
        outline(&s["children"], depth + 1, out);
    }
}

/// Asks each `(label, method, needle, nth, offset into the needle)` in
/// `uri` and renders the answers as one snapshot.
fn transcript(c: &mut Client, uri: &str, text: &str, asks: &[(&str, &str, &str, usize, u32)]) -> String {
    let mut out = String::new();
    for (label, method, needle, nth, shift) in asks {
        let (line, col) = find(text, needle, *nth);
        let r = c.at(method, uri, line, col + shift);
        out.push_str(&format!(
            "## {label}: {method} at {}:{}\n{}\n\n",
            line + 1,
            col + shift + 1,
            render(c, &r["result"])
        ));
    }
    out
}

#[test]
fn hello_db_session() {
    let mut c = Client::start("hello");
    let path = root().join("examples/hello-db/main.ztp");
    let text = std::fs::read_to_string(&path).unwrap();
    let uri = c.open(&path, &text);
    c.settle(&uri);
    assert_eq!(c.diagnostics.get(&uri), Some(&json!([])), "the example checks clean");
    let asks = [
        ("workload in a flow", "textDocument/definition", "-> postgres:pg", 0, 3),
        ("port in a flow", "textDocument/definition", "postgres:pg", 0, 10),
        ("port by name in a route", "textDocument/definition", "hello-app:http", 0, 11),
        ("namespace qualifier", "textDocument/definition", "monitoring/prometheus", 0, 2),
        ("a stdlib workload", "textDocument/definition", "monitoring/prometheus", 0, 13),
        ("a stdlib import", "textDocument/definition", "import \"std/baseline\"", 0, 10),
        ("references of a workload", "textDocument/references", "workload postgres", 0, 10),
        ("references of a port", "textDocument/references", "port pg", 0, 5),
        ("hover on a workload", "textDocument/hover", "workload hello-app", 0, 10),
        ("hover on a gateway", "textDocument/hover", "gateway hello-gateway", 0, 9),
        ("hover on a port", "textDocument/hover", "postgres:pg", 0, 10),
        ("hover on an L4 flow", "textDocument/hover", "allow hello-app -> postgres", 0, 1),
        ("hover on an L7 flow", "textDocument/hover", "allow hello-gateway -> hello-app", 0, 1),
        ("hover on an FQDN flow", "textDocument/hover", "allow hello-app -> \"api.github.com\"", 0, 1),
        ("hover on an expect", "textDocument/hover", "expect deny", 0, 1),
        ("nothing here", "textDocument/definition", "mesh {", 0, 1),
    ];
    let mut out = transcript(&mut c, &uri, &text, &asks);
    let symbols = c.request("textDocument/documentSymbol", json!({"textDocument": {"uri": uri}}));
    out.push_str("## outline\n");
    outline(&symbols["result"], 0, &mut out);
    insta::assert_snapshot!("lsp_hello_db", out);

    // The stdlib copy opened by go to definition is the embedded module.
    let baseline = c.cache.join("ztp").join(env!("CARGO_PKG_VERSION")).join("std/baseline.ztp");
    let copy = std::fs::read_to_string(&baseline).unwrap();
    assert_eq!(copy, std::fs::read_to_string(root().join("stdlib/baseline.ztp")).unwrap());
    assert!(std::fs::metadata(&baseline).unwrap().permissions().readonly());
    assert_eq!(c.stop(), Some(0));
}

#[test]
fn completion_while_typing() {
    let mut c = Client::start("complete");
    let path = root().join("examples/hello-db/main.ztp");
    let text = std::fs::read_to_string(&path).unwrap();
    let uri = c.open(&path, &text);
    c.settle(&uri);
    // Type a flow line by line; the text stops parsing, the names stay.
    let (line, _) = find(&text, "  allow hello-app -> postgres:pg", 0);
    let mut out = String::new();
    for (version, typed) in [
        (2, "  allow "),
        (3, "  allow hello-app -> "),
        (4, "  allow hello-app -> postgres:"),
        (5, "  allow hello-app -> monitoring/"),
    ] {
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 100}}, "text": typed}]}),
        );
        let r = c.at("textDocument/completion", &uri, line, typed.encode_utf16().count() as u32);
        let labels: Vec<String> =
            r["result"].as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap().to_string()).collect();
        out.push_str(&format!("{typed:?}\n  {}\n", labels.join(" ")));
    }
    for (label, before) in [
        ("attribute names of a port", "    port http { number = 8000, "),
        ("protocols", "    port http { number = 8000, protocol = "),
        ("blocks of a workload", "    "),
        ("HTTP methods", "    http { methods = [GET, "),
    ] {
        let (l, _) = find(&text, "    service_account = \"hello-app\"", 0);
        let (l, old) = if label == "HTTP methods" { (find(&text, "    http { methods", 0).0, 100) } else { (l, 100) };
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 10},
                "contentChanges": [{"range": {"start": {"line": l, "character": 0}, "end": {"line": l, "character": old}}, "text": before}]}),
        );
        let r = c.at("textDocument/completion", &uri, l, before.len() as u32);
        let labels: Vec<String> =
            r["result"].as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap().to_string()).collect();
        out.push_str(&format!("{label}: {before:?}\n  {}\n", labels.join(" ")));
        // Back to the original line.
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 11}, "contentChanges": [{"text": text}]}),
        );
    }
    insta::assert_snapshot!("lsp_completion", out);
    assert_eq!(c.stop(), Some(0));
}

#[test]
fn shop_spans_files() {
    let mut c = Client::start("shop");
    let path = root().join("examples/shop/frontend.ztp");
    let text = std::fs::read_to_string(&path).unwrap();
    let uri = c.open(&path, &text);
    c.settle(&uri);
    // Every file of the program is published, and all are clean.
    let files: Vec<&String> = c.diagnostics.keys().collect();
    assert_eq!(files.len(), 5, "{files:?}");
    assert!(c.diagnostics.values().all(|d| d == &json!([])));
    let (line, col) = find(&text, "backend/", 0);
    let mut out = String::new();
    for (label, method, shift) in [
        ("a workload of another file", "textDocument/definition", 9),
        ("a namespace of another file", "textDocument/definition", 1),
        ("references across files", "textDocument/references", 9),
    ] {
        let r = c.at(method, &uri, line, col + shift);
        out.push_str(&format!("## {label}\n{}\n\n", render(&c, &r["result"])));
    }
    insta::assert_snapshot!("lsp_shop", out);
    assert_eq!(c.stop(), Some(0));
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ztp-lsp-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const BROKEN: &str = "namespace demo {\n  workload api {\n    port http { number = 8080, protocol = http }\n  }\n  workload api {}\n  allow api -> db:http\n  allow api -> api:htp\n}\n";

#[test]
fn broken_files_and_unsaved_buffers() {
    let dir = scratch("broken");
    std::fs::write(dir.join("main.ztp"), BROKEN).unwrap();
    std::fs::write(dir.join("other.ztp"), "namespace other {\n  workload x {}\n}\n").unwrap();
    let mut c = Client::start("broken");
    let main = c.open(&dir.join("main.ztp"), BROKEN);
    c.settle(&main);
    let mut out = format!("## errors, with related information\n{}\n\n", normal(&c, &c.diagnostics[&main], Some(&dir)));

    // A new file that exists only in the editor joins the program, and
    // its syntax error is published for it.
    let unsaved = c.open(&dir.join("new.ztp"), "namespace extra {\n  workload {\n}\n");
    c.settle(&unsaved);
    out.push_str(&format!(
        "## syntax error in an unsaved file\n{}\n\n",
        normal(&c, &c.diagnostics[&unsaved], Some(&dir))
    ));

    // Fixing it brings back the errors of main.ztp (resolution had been
    // skipped), then closing it (it is not on disk) clears its diagnostics.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": unsaved, "version": 2}, "contentChanges": [{"text": "namespace extra {}\n"}]}),
    );
    c.settle(&unsaved);
    assert!(!c.diagnostics[&main].as_array().unwrap().is_empty());
    assert_eq!(c.diagnostics[&unsaved], json!([]));
    c.notify("textDocument/didClose", json!({"textDocument": {"uri": unsaved}}));

    // Fixing main.ztp in the buffer (not on disk) clears it.
    let fixed = "namespace demo {\n  workload api {\n    port http { number = 8080, protocol = http }\n  }\n  workload db {}\n  allow db -> api:http\n}\n";
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": main, "version": 2}, "contentChanges": [{"text": fixed}]}),
    );
    c.settle(&main);
    assert_eq!(c.diagnostics[&main], json!([]), "{:?}", c.diagnostics[&main]);
    let other = file_uri(&dir.join("other.ztp"));
    assert_eq!(c.diagnostics[&other], json!([]), "every file of the program is published");

    // Formatting: the buffer as `ztp fmt` prints it; nothing for a file
    // that does not parse.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": main, "version": 3}, "contentChanges": [{"text": "namespace demo{workload api{port http{number=8080}}\nallow api->api:http}"}]}),
    );
    let r = c.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": main}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    out.push_str(&format!("## formatting\n{}\n\n", normal(&c, &r["result"], Some(&dir))));
    let edit = r["result"][0]["newText"].as_str().unwrap();
    let ztp_fmt = Command::new(env!("CARGO_BIN_EXE_ztp"))
        .args(["fmt", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            ch.stdin
                .take()
                .unwrap()
                .write_all(b"namespace demo{workload api{port http{number=8080}}\nallow api->api:http}")?;
            ch.wait_with_output()
        })
        .unwrap();
    assert_eq!(edit, String::from_utf8_lossy(&ztp_fmt.stdout), "the same bytes as ztp fmt");
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": main, "version": 4}, "contentChanges": [{"text": "namespace demo {"}]}),
    );
    let r = c.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": main}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    assert_eq!(r["result"], json!([]));
    insta::assert_snapshot!("lsp_broken", out);

    // Closing the last file of the program clears what was published.
    c.notify("textDocument/didClose", json!({"textDocument": {"uri": main}}));
    let r = c
        .request("textDocument/hover", json!({"textDocument": {"uri": main}, "position": {"line": 0, "character": 0}}));
    assert_eq!(r["result"], Value::Null);
    assert!(c.diagnostics.values().all(|d| d == &json!([])), "{:?}", c.diagnostics);
    assert_eq!(c.stop(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_burst_of_edits_is_checked_once() {
    let dir = scratch("burst");
    let text = "namespace demo {\n  workload api {\n    port http { number = 8080 }\n  }\n}\n";
    std::fs::write(dir.join("main.ztp"), text).unwrap();
    let mut c = Client::start("burst");
    let uri = c.open(&dir.join("main.ztp"), text);
    c.settle(&uri);
    let before = c.publishes.len();
    for v in 2..=40 {
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": v},
                "contentChanges": [{"range": {"start": {"line": 4, "character": 0}, "end": {"line": 4, "character": 0}}, "text": " "}]}),
        );
    }
    c.settle(&uri);
    let burst: Vec<_> = c.publishes[before..].iter().filter(|(u, _, _)| *u == uri).collect();
    assert!(!burst.is_empty() && burst.len() < 10, "{burst:?}");
    assert_eq!(burst.last().unwrap().2, Some(40), "the last publish is of the last version");
    assert_eq!(c.stop(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_never_stops_the_server() {
    let dir = scratch("hostile");
    let mut c = Client::start("hostile");
    let mut out = String::new();
    let mut note =
        |c: &Client, label: &str, v: &Value| out.push_str(&format!("## {label}\n{}\n\n", normal(c, v, Some(&dir))));

    c.raw(b"Content-Length: 8\r\n\r\n{\"jsonrp");
    let m = c.next();
    note(&c, "a body that is not JSON", &m);
    c.raw(b"Content-Length: 4\r\n\r\n\xff\xfe\x00\x01");
    let m = c.next();
    note(&c, "a body that is not UTF-8", &m);
    c.send(json!({"jsonrpc": "2.0", "id": 99, "method": 42}));
    let m = c.next();
    note(&c, "a request whose method is not a string", &m);
    c.raw(b"this is no header\r\n");
    let m = c.next();
    note(&c, "a header line without a colon", &m);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    c.raw(format!("Content-Length: {}\r\n\r\n{deep}", deep.len()).as_bytes());
    let m = c.next();
    note(&c, "JSON nested 10,000 deep", &m);
    let r = c.request("ztp/unknown", json!({}));
    note(&c, "an unknown method", &r);
    let r = c.request("textDocument/hover", json!({"textDocument": 5}));
    note(&c, "params of the wrong shape", &r);
    let r = c.request(
        "textDocument/definition",
        json!({"textDocument": {"uri": "file:///nowhere/x.ztp"}, "position": {"line": 0, "character": 0}}),
    );
    note(&c, "a document that is not open", &r);

    // A buffer nested 10,000 deep, one with a lone surrogate escape and
    // one with a NUL; then positions far outside them.
    let deep_ztp = format!("namespace a {}{}", "{".repeat(10_000), "}".repeat(10_000));
    let uri = c.open(&dir.join("deep.ztp"), &deep_ztp);
    c.settle(&uri);
    note(&c, "diagnostics of the deep buffer", &c.diagnostics[&uri].clone());
    let lone = r#"{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///x","languageId":"ztp","version":1,"text":"\ud800"}}}"#;
    c.raw(format!("Content-Length: {}\r\n\r\n{lone}", lone.len()).as_bytes());
    let _ = c.open(&dir.join("nul.ztp"), "namespace a {\u{0} }");
    for method in
        ["textDocument/hover", "textDocument/definition", "textDocument/references", "textDocument/completion"]
    {
        for (line, character) in [(0, 99_999), (99_999, 0), (u32::MAX, u32::MAX)] {
            let r = c.at(method, &uri, line, character);
            assert!(r.get("error").is_none() || r["error"]["code"] != json!(-32603), "{method}: {r}");
        }
    }
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"range": {"start": {"line": 9, "character": 9}, "end": {"line": 0, "character": 0}}, "text": "x"}]}),
    );
    let r = c.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": uri}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    note(&c, "formatting a buffer that does not parse", &r["result"]);
    let r = c.request("textDocument/documentSymbol", json!({"textDocument": {"uri": uri}}));
    note(&c, "the outline of a buffer that does not parse", &r["result"]);
    insta::assert_snapshot!("lsp_bad_input", out);
    // Still serving.
    assert_eq!(c.stop(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_without_shutdown_fails_and_end_of_input_stops() {
    let mut c = Client::start("exit");
    c.notify("exit", Value::Null);
    assert_eq!(wait(&mut c.child), Some(1));
    let mut c = Client::start("eof");
    drop(c.stdin);
    assert_eq!(wait(&mut c.child), Some(1));
}
