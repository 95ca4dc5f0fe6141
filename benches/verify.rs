//! Criterion benches for the reachability verifier on a generated estate
//! of 10,000 workloads (`support/generate.rs`): one `explain` query over
//! the checked program's objects (model, judge), the same query from the
//! program's text (check included, as `ztp explain` runs it), and 1,000
//! `expect` lines judged over the emitted objects, alone and as part of
//! `ztp check` / `ztp test`. `cargo bench --bench verify`.

#[path = "support/generate.rs"]
mod generate;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::Path;
use ztp::driver;
use ztp::resolve::load::MemoryFs;
use ztp::verify::{expect, report};

const WORKLOADS: usize = 10_000;
const EXPECTATIONS: usize = 1_000;

fn estate(expectations: usize) -> MemoryFs {
    let files = generate::program(generate::Shape { expectations, ..generate::Shape::new(WORKLOADS) });
    let named: Vec<(String, &str)> = files.iter().map(|(f, t)| (format!("estate/{f}"), t.as_str())).collect();
    let refs: Vec<(&str, &str)> = named.iter().map(|(f, t)| (f.as_str(), *t)).collect();
    MemoryFs::with(&refs)
}

fn verify(c: &mut Criterion) {
    let root = Path::new("estate");
    let mut g = c.benchmark_group(format!("verify/{WORKLOADS}"));
    g.sample_size(10);

    let fs = estate(0);
    let Ok(checked) = driver::check(&fs, root) else { return };
    let (Some(ir), Some(manifests)) = (&checked.ir, &checked.manifests) else { return };
    // A flow from the middle of the estate, with its L7 request if it has one.
    let Some(flow) = ir.flows.get(ir.flows.len() / 2) else { return };
    g.bench_function(BenchmarkId::new("explain-one-query", WORKLOADS), |b| {
        b.iter(|| black_box(report::explain_over(ir, manifests, &flow.src, &flow.dst, flow.http.as_ref())))
    });
    g.bench_function(BenchmarkId::new("check+explain-one-query", WORKLOADS), |b| {
        b.iter(|| {
            let Ok(checked) = driver::check(&fs, root) else { return };
            let (Some(ir), Some(manifests)) = (&checked.ir, &checked.manifests) else { return };
            if let Some(f) = ir.flows.get(ir.flows.len() / 2) {
                black_box(report::explain_over(ir, manifests, &f.src, &f.dst, f.http.as_ref()));
            }
        })
    });

    let fs = estate(EXPECTATIONS);
    let Ok(checked) = driver::check(&fs, root) else { return };
    let (Some(ir), Some(manifests)) = (&checked.ir, &checked.manifests) else { return };
    assert_eq!(ir.expects.len(), EXPECTATIONS, "the generator wrote a different number of expectations");
    g.bench_function(BenchmarkId::new("1000-expectations", WORKLOADS), |b| {
        b.iter(|| black_box(expect::run(ir, manifests)))
    });
    g.bench_function(BenchmarkId::new("check+1000-expectations", WORKLOADS), |b| {
        b.iter(|| black_box(driver::check(&fs, root).map(|c| c.expectations.len()).ok()))
    });
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
