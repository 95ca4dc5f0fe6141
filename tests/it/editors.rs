//! The editor files under `editors/`: the TextMate grammar and the VS Code
//! extension are valid JSON, agree with each other, and the grammar knows
//! every keyword of `grammar/ztp.pest`, every block kind of the schema,
//! every word an attribute takes and every HTTP method.

use serde_json::Value;
use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

fn json(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

/// Whether `word` occurs in `text` with no identifier character either side.
fn has_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(ident) && !text[i + word.len()..].chars().next().is_some_and(ident)
    })
}

/// The block kinds reachable from the top level of a file and from a flow's
/// body.
fn block_kinds() -> Vec<&'static str> {
    let mut seen = vec![];
    let mut todo = vec!["", "flow"];
    while let Some(kind) = todo.pop() {
        // A block of labels (`selector`) has no shape of its own.
        let Some(shape) = ztp::resolve::shape_of(kind) else { continue };
        for b in shape.blocks {
            if !seen.contains(b) {
                seen.push(*b);
                todo.push(b);
            }
        }
    }
    assert!(seen.len() >= 10, "{seen:?}");
    seen
}

#[test]
fn the_grammar_covers_the_language() {
    let g = json("editors/ztp.tmLanguage.json");
    assert_eq!(g["scopeName"], "source.ztp");
    let repo = g["repository"].as_object().unwrap();
    for rule in ["comment", "string", "values", "cidr", "block", "flow", "import", "let", "route"] {
        assert!(repo.contains_key(rule), "no `{rule}` rule");
    }
    assert_eq!(g["repository"]["comment"]["begin"], "//");
    let text = read("editors/ztp.tmLanguage.json");

    // Every keyword the parser knows: `kw_x = @{ "x" ... }`, and `world`.
    let pest = read("grammar/ztp.pest");
    let keywords: Vec<&str> = pest
        .lines()
        .filter(|l| l.starts_with("kw_") || l.starts_with("world"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(keywords.len() >= 8, "{keywords:?}");
    for k in &keywords {
        assert!(has_word(&text, k), "keyword `{k}` is not in the grammar");
    }
    let block = g["repository"]["block"]["match"].as_str().unwrap();
    for kind in block_kinds() {
        assert!(has_word(block, kind), "block kind `{kind}` is not in the grammar's block rule");
    }
    let values = g["repository"]["values"].to_string();
    for (method, _) in ztp::value::HTTP_METHODS {
        assert!(has_word(&values, method), "HTTP method `{method}` is not in the grammar");
    }
    for (kind, attr) in
        [("port", "protocol"), ("listener", "protocol"), ("mesh", "mtls"), ("cluster", "hbone"), ("waypoint", "for")]
    {
        let words = ztp::resolve::words_of(kind, attr);
        assert!(!words.is_empty(), "{kind}.{attr}");
        for w in words {
            assert!(has_word(&values, w), "`{w}` ({kind}.{attr}) is not in the grammar");
        }
    }
}

#[test]
fn the_vscode_extension_starts_the_server_with_the_grammar() {
    let p = json("editors/vscode/package.json");
    assert_eq!(p["main"], "./extension.js");
    let lang = &p["contributes"]["languages"][0];
    assert_eq!(lang["id"], "ztp");
    assert_eq!(lang["extensions"][0], ".ztp");
    let config = lang["configuration"].as_str().unwrap();
    json(&format!("editors/vscode/{}", config.trim_start_matches("./")));
    let grammar = &p["contributes"]["grammars"][0];
    assert_eq!(grammar["language"], "ztp");
    assert_eq!(grammar["scopeName"], "source.ztp");
    // The grammar is copied in from `editors/` when the extension is
    // installed or packaged, so there is one copy in the repository.
    let path = grammar["path"].as_str().unwrap();
    let script = p["scripts"]["grammar"].as_str().unwrap();
    assert!(script.contains("../ztp.tmLanguage.json") && script.contains(path.trim_start_matches("./")), "{script}");
    assert!(p["dependencies"]["vscode-languageclient"].is_string());
    let commands: Vec<&str> =
        p["contributes"]["commands"].as_array().unwrap().iter().filter_map(|c| c["command"].as_str()).collect();
    let client = read("editors/vscode/extension.js");
    assert!(client.contains(r#"args: ["lsp"]"#), "the client starts `ztp lsp`");
    for c in client.split("registerCommand(\"").skip(1).filter_map(|s| s.split('"').next()) {
        assert!(commands.contains(&c), "command `{c}` is not declared in package.json");
    }
}
