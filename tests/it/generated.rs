//! The generated estates the benches measure (`benches/support/generate.rs`)
//! are programs a user could write: they check clean, are already formatted,
//! their expectations hold and their build is the same bytes every time.

#[path = "../../benches/support/generate.rs"]
pub mod generate;

use std::path::Path;
use ztp::resolve::load::MemoryFs;
use ztp::{driver, output};

fn estate(shape: generate::Shape) -> (MemoryFs, Vec<(String, String)>) {
    let files = generate::program(shape);
    let named: Vec<(String, &str)> = files.iter().map(|(f, t)| (format!("estate/{f}"), t.as_str())).collect();
    let refs: Vec<(&str, &str)> = named.iter().map(|(f, t)| (f.as_str(), *t)).collect();
    (MemoryFs::with(&refs), files)
}

#[test]
fn generated_estate_checks_clean_and_its_expectations_hold() {
    // 120 workloads: six namespaces in one file, a gateway, every kind of flow.
    let shape = generate::Shape { expectations: 12, ..generate::Shape::new(120) };
    let (fs, files) = estate(shape);
    assert_eq!(files.len(), 1);
    let checked = driver::check(&fs, Path::new("estate")).unwrap();
    let shown: Vec<String> =
        checked.diagnostics.sorted().iter().map(|d| format!("{}: {}", d.code.as_str(), d.message)).collect();
    assert!(shown.is_empty(), "{shown:#?}");
    assert_eq!(checked.expectations.len(), 12);
    assert!(checked.expectations.iter().all(|o| o.failure.is_none()));
    for (name, text) in &files {
        match driver::format_text(name, text) {
            driver::Formatted::Ok(formatted) => assert!(formatted == *text, "{name} is not formatted"),
            driver::Formatted::Invalid(..) => panic!("{name} does not parse"),
        }
    }
}

#[test]
fn generated_estate_has_the_promised_shape_and_builds_deterministically() {
    let shape = generate::Shape::new(1_000);
    assert_eq!(shape.namespaces(), 50);
    let (fs, files) = estate(shape);
    assert_eq!(files.len(), 5);
    let text: String = files.iter().map(|(_, t)| t.as_str()).collect();
    let count = |needle: &str| text.matches(needle).count();
    assert_eq!(count("  workload "), 1_000);
    assert_eq!(count("  gateway "), 1);
    let flows = count("  allow ");
    assert!((2_900..=3_300).contains(&flows), "{flows} flows");
    assert_eq!(count("    http {"), 300, "L7 on the flows into 10% of the workloads");
    assert_eq!(count(".example.com\":443"), 200, "FQDN egress on 20%");
    assert_eq!(count("/16:5432"), 50, "CIDR egress on 5%");
    let build = || {
        let built = driver::build(&fs, Path::new("estate"), None).unwrap();
        assert!(!built.checked.diagnostics.has_errors());
        output::stream(&built.manifests.unwrap(), output::Format::Yaml)
    };
    let first = build();
    assert!(first == build(), "two builds of one program differ");
}
