//! The binary end to end: exit codes, output streams, `fmt` in place.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn ztp(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ztp"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env("NO_COLOR", "1");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ztp-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn check_exit_codes() {
    assert_eq!(code(&ztp(&["check", "examples/hello-db"], None)), 0);
    assert_eq!(code(&ztp(&["check", "examples/hello-db/main.ztp"], None)), 0);
    let bad = ztp(&["check", "tests/fixtures/diagnostics"], None);
    assert_eq!(code(&bad), 1);
    assert_eq!(code(&ztp(&["check", "does/not/exist"], None)), 2);
    assert_eq!(code(&ztp(&["check", "--no-such-flag"], None)), 2);
}

#[test]
fn check_human_output_names_file_line_and_column() {
    let dir = scratch("human");
    std::fs::write(dir.join("a.ztp"), "namespace demo {\n  workload api {}\n  allow api -> apii\n}\n").unwrap();
    let o = ztp(&["check", dir.join("a.ztp").to_str().unwrap()], None);
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("[Z0201]"), "{err}");
    assert!(err.contains("a.ztp:3:"), "{err}");
    assert!(err.contains("did you mean `api`?"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn check_json_is_one_object_per_line_on_stdout() {
    let dir = scratch("json");
    std::fs::write(dir.join("a.ztp"), "namespace Demo {\n  workload api { port p { number = 0 } }\n}\n").unwrap();
    let o = ztp(&["check", "--message-format", "json", dir.join("a.ztp").to_str().unwrap()], None);
    assert_eq!(code(&o), 1);
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in &lines {
        for key in ["code", "severity", "message", "file", "start", "end"] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
        assert!(l["start"]["byte"].is_u64() && l["start"]["line"].is_u64() && l["start"]["column"].is_u64());
    }
    assert_eq!(lines[0]["code"], "Z0411");
    assert_eq!(lines[0]["start"]["line"], 1);
    assert_eq!(lines[0]["start"]["column"], 11);
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    let dir = scratch("warn");
    std::fs::write(dir.join("a.ztp"), "let unused = 1\nnamespace demo {}\n").unwrap();
    let file = dir.join("a.ztp");
    let f = file.to_str().unwrap();
    assert_eq!(code(&ztp(&["check", f], None)), 0);
    assert_eq!(code(&ztp(&["check", "--deny-warnings", f], None)), 1);
}

#[test]
fn fmt_rewrites_checks_and_reads_stdin() {
    let dir = scratch("fmt");
    let messy = "namespace demo{workload api{port http{number=80,protocol=http}}}\n";
    let file = dir.join("a.ztp");
    std::fs::write(&file, messy).unwrap();
    let f = file.to_str().unwrap();
    let o = ztp(&["fmt", "--check", f], None);
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stdout).contains("a.ztp"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), messy, "--check changed the file");
    assert_eq!(code(&ztp(&["fmt", f], None)), 0);
    let formatted = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        formatted,
        "namespace demo {\n  workload api {\n    port http { number = 80, protocol = http }\n  }\n}\n"
    );
    assert_eq!(code(&ztp(&["fmt", "--check", f], None)), 0);
    let o = ztp(&["fmt", "-"], Some(messy));
    assert_eq!(code(&o), 0);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), formatted);
    let o = ztp(&["fmt", "--stdin"], Some(messy));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), formatted);
}

#[test]
fn fmt_leaves_a_file_that_does_not_parse_untouched() {
    let dir = scratch("fmt-bad");
    let broken = "namespace demo {\n  workload api {\n";
    let file = dir.join("b.ztp");
    std::fs::write(&file, broken).unwrap();
    let o = ztp(&["fmt", file.to_str().unwrap()], None);
    assert_eq!(code(&o), 1);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), broken);
    assert!(String::from_utf8_lossy(&o.stderr).contains("Z0001"));
    // From stdin, the text comes back unchanged so editors keep the buffer.
    let o = ztp(&["fmt", "-"], Some(broken));
    assert_eq!(code(&o), 1);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), broken);
}

#[test]
fn codes_lists_and_explains() {
    let o = ztp(&["codes"], None);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Z0201"));
    let o = ztp(&["codes", "z0201"], None);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("# Z0201"));
    assert_eq!(code(&ztp(&["codes", "Z9999"], None)), 2);
}

#[test]
fn readme_commands_work() {
    // The README's first command runs ztp on an example.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(readme.contains("cargo run -- check examples/hello-db"));
    assert!(readme.contains("cargo test --locked"));
}

#[test]
fn build_writes_layers_or_a_stream_and_nothing_on_errors() {
    let dir = scratch("build");
    let out = dir.join("out");
    let o = ztp(&["build", "examples/hello-db", "-o", out.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("00-namespaces.yaml").is_file() && out.join("kustomization.yaml").is_file());
    let o = ztp(&["build", "examples/hello-db"], None);
    assert_eq!(code(&o), 0);
    let stream = String::from_utf8(o.stdout).unwrap();
    assert!(stream.starts_with("---\napiVersion: v1\nkind: Namespace\n"));
    // A program with errors writes nothing.
    std::fs::write(dir.join("bad.ztp"), "namespace demo {\n  allow x -> y\n}\n").unwrap();
    let bad_out = dir.join("bad-out");
    let o = ztp(&["build", dir.join("bad.ztp").to_str().unwrap(), "-o", bad_out.to_str().unwrap()], None);
    assert_eq!(code(&o), 1);
    assert!(!bad_out.exists());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing written"));
}

#[test]
fn build_options_are_validated() {
    assert_eq!(code(&ztp(&["build", "examples/hello-db", "--stack", "Not_Valid"], None)), 2);
    assert_eq!(code(&ztp(&["build", "examples/hello-db", "--annotate-waves", "flux"], None)), 2);
    let abs = scratch("flux").join("out");
    let o = ztp(&["build", "examples/hello-db", "--annotate-waves", "flux", "-o", abs.to_str().unwrap()], None);
    assert_eq!(code(&o), 2, "an absolute -o needs --flux-path");
    let o = ztp(&["build", "examples/hello-db", "--stack", "lab", "--annotate-waves", "argocd"], None);
    assert_eq!(code(&o), 0);
    let stream = String::from_utf8(o.stdout).unwrap();
    assert!(stream.contains("app.kubernetes.io/part-of: lab") && stream.contains("name: ztp-lab-default-deny"));
    assert!(stream.contains("argocd.argoproj.io/sync-wave: '90'"));
}

#[test]
fn test_judges_every_expectation() {
    let ok = ztp(&["test", "examples/hello-db"], None);
    assert_eq!(code(&ok), 0, "{}", String::from_utf8_lossy(&ok.stderr));
    let out = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(out.ends_with("\n13 passed, 0 failed\n"), "{out}");
    assert!(
        out.contains("ok    examples/hello-db/main.ztp:52:3  expect deny hello-app -> \"api.cloudflare.com\":443"),
        "{out}"
    );
    // An expectation over several lines is listed on one, without its comment.
    assert!(
        out.contains("ok    examples/hello-db/main.ztp:49:3  expect deny hello-gateway -> hello-app:http { http { methods = [POST], paths = [\"/github\"] } }\n"),
        "{out}"
    );

    let bad = ztp(&["test", "tests/fixtures/diagnostics/Z0613-deny-of-allowed.ztp"], None);
    assert_eq!(code(&bad), 1);
    let out = String::from_utf8_lossy(&bad.stdout).into_owned();
    assert!(out.contains("FAIL  tests/fixtures/diagnostics/Z0613-deny-of-allowed.ztp:16:3  expect deny web -> api:http\n      demo/web -> demo/api:8080 is allowed by every layer"), "{out}");
    assert!(out.ends_with("\n1 passed, 2 failed\n"), "{out}");

    // A failed expectation fails check and build, which writes nothing.
    let check = ztp(&["check", "tests/fixtures/diagnostics/Z0613-allow-without-flow.ztp"], None);
    assert_eq!(code(&check), 1);
    let build = ztp(&["build", "tests/fixtures/diagnostics/Z0613-allow-without-flow.ztp"], None);
    assert_eq!(code(&build), 1);
    assert!(build.stdout.is_empty());

    // Other errors: nothing is judged.
    let broken = ztp(&["test", "tests/fixtures/diagnostics/Z0201-expect-unknown-names.ztp"], None);
    assert_eq!(code(&broken), 1);
    assert!(String::from_utf8_lossy(&broken.stderr).contains("no expectation was judged"));
}

#[test]
fn explain_names_every_hop_layer_and_object() {
    let cases: &[(&str, &[&str])] = &[
        ("explain_l7_allowed", &["explain", "examples/hello-db", "hello-gateway", "->", "hello-app:http"]),
        (
            "explain_l7_denied",
            &["explain", "examples/hello-db", "hello-gateway->hello-app:http", "--method", "POST", "--path", "/github"],
        ),
        ("explain_fqdn_denied", &["explain", "examples/hello-db", "hello-app", "->", "\"api.cloudflare.com\":443"]),
        ("explain_fqdn_allowed", &["explain", "examples/hello-db", "hello-app", "->", "\"api.github.com\":443"]),
        ("explain_no_identity", &["explain", "examples/hello-db", "namespace(demo)", "->", "postgres:pg"]),
        ("explain_pod_ips", &["explain", "examples/hello-db", "monitoring/prometheus", "->", "hello-app:metrics"]),
    ];
    for (name, args) in cases {
        let o = ztp(args, None);
        assert_eq!(code(&o), 0, "{name}: {}", String::from_utf8_lossy(&o.stderr));
        insta::assert_snapshot!(*name, String::from_utf8_lossy(&o.stdout));
    }
    let json = ztp(&["explain", "examples/hello-db", "world", "->", "hello-gateway:http", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["flows"][0]["verdict"], "allowed");
    assert!(v["flows"][0]["steps"].as_array().unwrap().iter().any(|s| s["source"] == "main.ztp:16"));
    let bad = ztp(&["explain", "examples/hello-db", "nosuch", "->", "hello-app:http"], None);
    assert_eq!(code(&bad), 2);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no workload or gateway `nosuch`"));
}

#[test]
fn graph_draws_every_example() {
    for example in ["hello-db", "shop", "egress"] {
        for format in ["dot", "mermaid"] {
            let o = ztp(&["graph", &format!("examples/{example}"), "--format", format], None);
            assert_eq!(code(&o), 0, "{example} {format}: {}", String::from_utf8_lossy(&o.stderr));
            insta::assert_snapshot!(format!("graph_{example}_{format}"), String::from_utf8_lossy(&o.stdout));
        }
    }
    // The README shows hello-db's picture as ztp draws it.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let drawn = String::from_utf8(ztp(&["graph", "examples/hello-db", "--format", "mermaid"], None).stdout).unwrap();
    assert!(
        readme.contains(&format!("```mermaid\n{drawn}```")),
        "README's picture is stale: run `ztp graph examples/hello-db --format mermaid`"
    );
}

#[test]
fn diff_reports_exactly_the_flows_that_change() {
    let dir = scratch("diff").join("hello-db");
    std::fs::create_dir_all(&dir).unwrap();
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-db/main.ztp")).unwrap();
    let without = text
        .replace("  allow hello-app -> postgres:pg // L4: ztunnel + Cilium\n", "")
        .replace("  expect allow hello-app -> postgres:pg\n", "");
    std::fs::write(dir.join("main.ztp"), without).unwrap();
    let copy = dir.to_str().unwrap();

    let o = ztp(&["diff", "examples/hello-db", copy], None);
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    insta::assert_snapshot!("diff_flow_removed", String::from_utf8_lossy(&o.stdout));

    let o = ztp(&["diff", copy, "examples/hello-db", "--json"], None);
    assert_eq!(code(&o), 2);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{v:#}");
    assert_eq!(changes[0]["flow"], "demo/hello-app -> demo/postgres:5432");
    assert_eq!(changes[0]["change"], "allowed");
    assert!(
        changes[0]["because"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["object"] == "AuthorizationPolicy demo/ztp-l4-postgres")
    );

    let o = ztp(&["diff", "examples/hello-db", "examples/hello-db"], None);
    assert_eq!(code(&o), 0);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "No reachability changes.\n");
}

#[test]
fn diff_tells_apart_requests_that_differ_only_in_headers() {
    let program = |tenant: &str| {
        format!(
            "import \"std/baseline\"\n\nnamespace demo {{\n  workload web {{}}\n  workload api {{\n    port http {{ number = 8080, protocol = http }}\n  }}\n  allow web -> api:http {{\n    http {{ methods = [GET], paths = [\"/v1\"], headers = {{ \"x-tenant\" = \"{tenant}\" }} }}\n  }}\n}}\n"
        )
    };
    let dir = scratch("diff-headers");
    let (old, new) = (dir.join("old"), dir.join("new"));
    for (d, tenant) in [(&old, "acme"), (&new, "globex")] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("main.ztp"), program(tenant)).unwrap();
    }
    let (old, new) = (old.to_str().unwrap(), new.to_str().unwrap());
    let o = ztp(&["diff", old, new], None);
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("- demo/web -> demo/api:8080 (GET /v1, x-tenant: acme) newly denied"), "{text}");
    assert!(text.contains("+ demo/web -> demo/api:8080 (GET /v1, x-tenant: globex) newly allowed"), "{text}");
    assert!(text.ends_with("1 flow newly allowed, 1 newly denied.\n"), "{text}");

    let o = ztp(&["diff", old, new, "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let changes = v["changes"].as_array().unwrap();
    let heard: Vec<(&str, &str)> =
        changes.iter().map(|c| (c["headers"]["x-tenant"].as_str().unwrap(), c["change"].as_str().unwrap())).collect();
    assert_eq!(heard, [("acme", "denied"), ("globex", "allowed")], "{v:#}");
}

/// hello-db's main.ztp without the flow to postgres (and its expectation).
fn hello_db_without_postgres() -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-db/main.ztp")).unwrap();
    let without = text
        .replace("  allow hello-app -> postgres:pg // L4: ztunnel + Cilium\n", "")
        .replace("  expect allow hello-app -> postgres:pg\n", "");
    assert_ne!(text, without);
    without
}

#[test]
fn manifests_are_judged_as_foreign_yaml_by_explain_test_and_graph() {
    let lab = "tests/fixtures/verify/lab/manifests";
    let o = ztp(&["explain", "--manifests", lab, "hello-app", "->", "postgres:5432"], None);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("demo/hello-app -> demo/postgres:5432: allowed\n"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("note: skipped objects"));

    let o = ztp(&["explain", "--manifests", lab, "--json", "hello-gateway->postgres:5432"], None);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["flows"][0]["verdict"], "denied", "{v:#}");

    let o = ztp(&["test", "--manifests", lab, "tests/fixtures/verify/lab/expectations"], None);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("15 passed, 0 failed\n"));

    let dir = scratch("manifests");
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "allow hello-gateway -> postgres:5432\ndeny hello-app -> postgres:5432\n").unwrap();
    let o = ztp(&["test", "--manifests", lab, wrong.to_str().unwrap()], None);
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("0 passed, 2 failed\n"));

    let o = ztp(&["graph", "--manifests", lab, "--format", "mermaid"], None);
    assert_eq!(code(&o), 0);
    insta::assert_snapshot!("graph_lab_manifests_mermaid", String::from_utf8_lossy(&o.stdout));

    // Bad input is a located error, never a panic, and nothing is judged.
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("a.yaml"), "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  bad: [\n").unwrap();
    std::fs::write(bad.join("b.yaml"), "kind: Widget\n---\n- 1\n").unwrap();
    let o = ztp(&["explain", "--manifests", bad.to_str().unwrap(), "world", "->", "x:80"], None);
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error: a.yaml:6:"), "{err}");
    assert!(err.contains("error: b.yaml:1:1: the Widget has no `apiVersion`"), "{err}");
    assert!(err.contains("error: b.yaml:3:1: a document must be a Kubernetes object"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn diff_of_manifest_directories_and_against_a_git_revision() {
    let dir = scratch("diff-manifests");
    let copy = dir.join("program").join("hello-db");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::write(copy.join("main.ztp"), hello_db_without_postgres()).unwrap();
    let workloads = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workloads/hello-db.yaml");
    let (old, new) = (dir.join("old"), dir.join("new"));
    for (program, out) in [(Path::new("examples/hello-db"), &old), (copy.as_path(), &new)] {
        let o = ztp(&["build", program.to_str().unwrap(), "-o", out.to_str().unwrap()], None);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::copy(&workloads, out.join("workloads.yaml")).unwrap();
    }
    let o = ztp(&["diff", old.to_str().unwrap(), new.to_str().unwrap()], None);
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    insta::assert_snapshot!("diff_manifests_flow_removed", String::from_utf8_lossy(&o.stdout));
    let o = ztp(&["diff", old.to_str().unwrap(), old.to_str().unwrap()], None);
    assert_eq!(code(&o), 0);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "No reachability changes.\n");
    // A program and manifests do not compare.
    assert_eq!(code(&ztp(&["diff", "examples/hello-db", old.to_str().unwrap()], None)), 1);

    // --base REV: the program as committed against its work tree.
    let repo = dir.join("repo");
    let program = repo.join("hello-db");
    std::fs::create_dir_all(&program).unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-db/main.ztp"), program.join("main.ztp"))
        .unwrap();
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(["-c", "user.name=ztp", "-c", "user.email=ztp@example.invalid", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "hello-db"]);
    let at = program.to_str().unwrap();
    let o = ztp(&["diff", "--base", "HEAD", at], None);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(program.join("main.ztp"), hello_db_without_postgres()).unwrap();
    let o = ztp(&["diff", "--base", "HEAD", at, "--json"], None);
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{v:#}");
    assert_eq!(changes[0]["flow"], "demo/hello-app -> demo/postgres:5432");
    assert_eq!(changes[0]["change"], "denied");
    let o = ztp(&["diff", "--base", "no-such-revision", at], None);
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("`no-such-revision` is not a revision"));
}

#[test]
fn explain_takes_request_headers() {
    let fixture = "tests/fixtures/diagnostics/Z0613-l7-requests.ztp";
    let without = ztp(&["explain", fixture, "web", "->", "api:http", "--path", "/v1/orders"], None);
    assert_eq!(code(&without), 0, "{}", String::from_utf8_lossy(&without.stderr));
    let out = String::from_utf8_lossy(&without.stdout).into_owned();
    assert!(out.starts_with("demo/web -> demo/api:8080 (GET /v1/orders): denied\n"), "{out}");

    let with = ztp(&["explain", fixture, "web->api:http", "--path", "/v1/orders", "--header", "X-Tenant: acme"], None);
    let out = String::from_utf8_lossy(&with.stdout).into_owned();
    assert!(out.starts_with("demo/web -> demo/api:8080 (GET /v1/orders, x-tenant: acme): allowed\n"), "{out}");

    let json = ztp(&["explain", fixture, "web->api:http", "--header=x-tenant:acme", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["flows"][0]["headers"], serde_json::json!({"x-tenant": "acme"}));
    assert_eq!(v["flows"][0]["verdict"], "allowed");

    let bad = ztp(&["explain", fixture, "web->api:http", "--header", "x-tenant"], None);
    assert_eq!(code(&bad), 2);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("write a header as `NAME:VALUE`"));
}
