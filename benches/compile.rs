//! Criterion benches for the compiler's stages on generated estates
//! (`support/generate.rs`): parse, check (load → resolve → typeck), lower,
//! emit, build to YAML and JSON, and fmt. `cargo bench --bench compile`.

#[path = "support/generate.rs"]
mod generate;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::Path;
use ztp::resolve::load::{self, MemoryFs};
use ztp::{backend, driver, ir, output, resolve, source::SourceId, syntax, typeck};

/// Sizes measured on every run; 50,000 is left to `ZTP_BENCH_LARGE=1`.
fn sizes() -> Vec<usize> {
    let mut s = vec![100, 1_000, 10_000];
    if std::env::var_os("ZTP_BENCH_LARGE").is_some() {
        s.push(50_000);
    }
    s
}

fn estate(n: usize) -> (MemoryFs, Vec<(String, String)>) {
    let files = generate::program(generate::Shape::new(n));
    let named: Vec<(String, &str)> = files.iter().map(|(f, t)| (format!("estate/{f}"), t.as_str())).collect();
    let refs: Vec<(&str, &str)> = named.iter().map(|(f, t)| (f.as_str(), *t)).collect();
    (MemoryFs::with(&refs), files)
}

fn stages(c: &mut Criterion) {
    for n in sizes() {
        let (fs, files) = estate(n);
        let root = Path::new("estate");
        let mut g = c.benchmark_group(format!("compile/{n}"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("parse", n), |b| {
            b.iter(|| {
                for (i, (_, text)) in files.iter().enumerate() {
                    black_box(syntax::parse(SourceId(i as u32), text));
                }
            })
        });
        let loaded = || load::load(&fs, root).map_err(|e| e.error.kind());
        g.bench_function(BenchmarkId::new("load", n), |b| b.iter(|| black_box(loaded())));
        let Ok(l) = loaded() else { return };
        g.bench_function(BenchmarkId::new("resolve+typeck", n), |b| {
            b.iter(|| {
                let (p, ds) = resolve::resolve(&l);
                black_box((typeck::check(&p), ds))
            })
        });
        let (p, _) = resolve::resolve(&l);
        g.bench_function(BenchmarkId::new("lower", n), |b| {
            b.iter(|| black_box(ir::lower(&p, &l.sources, root, "estate")))
        });
        let (Some(lowered), _) = ir::lower(&p, &l.sources, root, "estate") else { return };
        g.bench_function(BenchmarkId::new("emit", n), |b| b.iter(|| black_box(backend::emit(&lowered))));
        let ms = backend::emit(&lowered);
        g.bench_function(BenchmarkId::new("yaml", n), |b| {
            b.iter(|| black_box(output::stream(&ms, output::Format::Yaml)))
        });
        g.bench_function(BenchmarkId::new("json", n), |b| {
            b.iter(|| black_box(output::stream(&ms, output::Format::Json)))
        });
        g.bench_function(BenchmarkId::new("check", n), |b| b.iter(|| black_box(driver::check(&fs, root).is_ok())));
        g.bench_function(BenchmarkId::new("build-yaml", n), |b| {
            b.iter(|| {
                let built = driver::build(&fs, root, None).ok();
                black_box(built.and_then(|b| b.manifests).map(|ms| output::stream(&ms, output::Format::Yaml)))
            })
        });
        g.bench_function(BenchmarkId::new("fmt", n), |b| {
            b.iter(|| {
                for (name, text) in &files {
                    black_box(driver::format_text(name, text));
                }
            })
        });
        g.finish();
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
