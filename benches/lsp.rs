//! `ztp lsp` on the 10,000-workload generated estate (`support/generate.rs`),
//! driven over JSON-RPC as an editor drives it: the time from a one-line
//! edit of an open file to its `publishDiagnostics` (the check's first
//! half), and to a hover answered with the whole check done (both halves).
//! The server runs as a child process; each edit starts from a settled
//! server. `cargo bench --bench lsp`.

#[path = "support/generate.rs"]
mod generate;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    id: i64,
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

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ztp"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ztp lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            while let Some(m) = read_message(&mut stdout) {
                if tx.send(m).is_err() {
                    break;
                }
            }
        });
        let mut s = Server { child, stdin, rx, id: 0 };
        s.request("initialize", json!({"capabilities": {}}));
        s
    }

    fn send(&mut self, v: Value) {
        let body = v.to_string();
        let _ = write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len());
        let _ = self.stdin.flush();
    }

    fn next(&self) -> Value {
        self.rx.recv_timeout(Duration::from_secs(120)).expect("the server answers")
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let id = json!(self.id);
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let m = self.next();
            if m.get("method").is_none() && m["id"] == id {
                return m;
            }
        }
    }

    /// Waits for diagnostics of `uri` at `version`.
    fn diagnostics(&self, uri: &str, version: i64) {
        loop {
            let m = self.next();
            if m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["uri"] == uri
                && m["params"]["version"] == version
            {
                return;
            }
        }
    }

    fn edit(&mut self, uri: &str, version: i64) {
        let comment = format!("// edit {version}");
        self.send(json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 200}}, "text": comment}]
        }}));
    }

    fn hover(&mut self, uri: &str) {
        self.request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": {"line": 0, "character": 0}}),
        );
    }
}

fn lsp(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("ztp-bench-lsp-{}", std::process::id()));
    generate::write(generate::Shape::new(10_000), &dir).expect("the estate is written");
    let path = dir.join("estate-000.ztp");
    let text = std::fs::read_to_string(&path).expect("readable");
    let uri = format!("file://{}", path.display());
    let mut s = Server::start();
    s.send(json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
        "textDocument": {"uri": uri, "languageId": "ztp", "version": 1, "text": text}}}));
    s.diagnostics(&uri, 1);
    s.hover(&uri);
    let mut version = 1;
    let mut g = c.benchmark_group("lsp/10000");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(20));
    g.bench_function("edit-to-diagnostics", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                version += 1;
                let start = Instant::now();
                s.edit(&uri, version);
                s.diagnostics(&uri, version);
                total += start.elapsed();
                // Settle: the second half finishes before the next edit.
                s.hover(&uri);
            }
            total
        })
    });
    g.bench_function("edit-to-complete-check", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                version += 1;
                let start = Instant::now();
                s.edit(&uri, version);
                s.hover(&uri);
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
    s.request("shutdown", Value::Null);
    s.send(json!({"jsonrpc": "2.0", "method": "exit"}));
    let _ = s.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, lsp);
criterion_main!(benches);
