//! `cargo run --release --example generate -- WORKLOADS DIR [EXPECTATIONS]`
//! writes a generated estate (see `support/generate.rs`) into DIR, for
//! timing the command line by hand: `ztp build DIR -o -`, `ztp check DIR`.

#[path = "support/generate.rs"]
mod generate;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(workloads), Some(dir)) = (args.first().and_then(|a| a.parse::<usize>().ok()), args.get(1)) else {
        eprintln!("usage: generate WORKLOADS DIR [EXPECTATIONS]");
        return ExitCode::from(2);
    };
    let expectations = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let shape = generate::Shape { expectations, ..generate::Shape::new(workloads) };
    match generate::write(shape, std::path::Path::new(dir)) {
        Ok(()) => {
            println!("{} workloads in {} namespaces written to {dir}", workloads, shape.namespaces());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}
