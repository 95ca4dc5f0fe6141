//! Command-line handling: parse arguments, call the driver, print, and choose
//! the exit code. No compiler logic lives here.
//!
//! Exit codes: 0 success; 1 the input has errors (or `fmt --check` found
//! files to reformat); 2 usage or I/O errors.

use crate::cluster::client::ConnectOptions;
use crate::cluster::command::{self, Verb};
use crate::diag::{Diagnostic, codes, render};
use crate::driver::{self, Formatted};
use crate::output;
use crate::resolve::load::{RealFs, normalize};
use crate::source::SourceMap;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ztp",
    version,
    about = "Zero-trust networking for Kubernetes: one .ztp program, every Cilium and Istio ambient layer"
)]
struct Cli {
    /// When to color diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MessageFormat {
    /// Rendered reports with source excerpts.
    Human,
    /// One JSON object per diagnostic, one per line, on standard output.
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Yaml,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    /// Graphviz (`dot -Tsvg`).
    Dot,
    /// Mermaid (renders in GitHub and GitLab Markdown).
    Mermaid,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WaveStyle {
    /// `argocd.argoproj.io/sync-wave` annotations.
    Argocd,
    /// One directory per wave, chained by Flux Kustomizations.
    Flux,
}

#[derive(Subcommand)]
enum Command {
    /// Type-check a program: a .ztp file, or a directory whose .ztp files form one program.
    Check {
        /// File or directory (default: the current directory).
        path: Option<PathBuf>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        message_format: MessageFormat,
        /// Fail (exit 1) on warnings too.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Compile a program to Cilium, Istio and Gateway API manifests.
    Build {
        /// File or directory (default: the current directory).
        path: Option<PathBuf>,
        /// Output directory (one file per layer and a kustomization.yaml), or `-` for one stream on standard output.
        #[arg(short = 'o', long = "output", default_value = "-")]
        output: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Yaml)]
        format: OutputFormat,
        /// Add ordering for a GitOps engine, so it applies the layers in ztp's safe order.
        #[arg(long, value_enum)]
        annotate_waves: Option<WaveStyle>,
        /// With `--annotate-waves flux`: the GitRepository the Kustomizations read.
        #[arg(long, default_value = "flux-system")]
        flux_source: String,
        /// With `--annotate-waves flux`: the output directory's path in that repository (default: `./<output>`).
        #[arg(long)]
        flux_path: Option<String>,
        /// The stack name (label `app.kubernetes.io/part-of`, cluster-wide object names); overrides `cluster { stack }`.
        #[arg(long)]
        stack: Option<String>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        message_format: MessageFormat,
        /// Fail (exit 1) on warnings too.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Rewrite .ztp files in the canonical style.
    Fmt {
        /// Files or directories (searched recursively); `-` formats standard input.
        paths: Vec<PathBuf>,
        /// Change nothing; list the files that would change and exit 1 if any.
        #[arg(long)]
        check: bool,
        /// Format standard input to standard output.
        #[arg(long)]
        stdin: bool,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        message_format: MessageFormat,
    },
    /// Explain whether a flow is allowed: every hop and layer, the object and the `.ztp` line (or YAML file and line) that decided.
    Explain {
        /// `[PATH] SRC '->' DST[:PORT]` (quote the arrow in a shell), e.g. `examples/hello-db hello-gateway '->' hello-app:http`; with `--manifests DIR`, just `SRC '->' DST[:PORT]`.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        query: Vec<String>,
        #[command(flatten)]
        manifests: ManifestArgs,
        /// Address the destination's pod IP, not its Service (`--manifests` only).
        #[arg(long)]
        pod_ip: bool,
        /// The request's HTTP method (for L7 rules).
        #[arg(long)]
        method: Option<String>,
        /// The request's path (for L7 rules).
        #[arg(long)]
        path: Option<String>,
        /// A request header, `NAME:VALUE` (for L7 rules; repeatable).
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// Print the explanation as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The reachability change between two versions of a program (or two directories of manifests): flows newly allowed or denied, and why. Exit 0 unchanged, 2 changed.
    Diff {
        /// `OLD NEW`, two programs or two manifest directories; with `--base REV`, just `[NEW]` (default: the current directory).
        #[arg(num_args = 0..=2)]
        paths: Vec<PathBuf>,
        /// Compare NEW with itself as of this git revision.
        #[arg(long, value_name = "REV")]
        base: Option<String>,
        #[command(flatten)]
        manifests: ManifestArgs,
        /// Print the change as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Draw the program's allowed flows, grouped by namespace.
    Graph {
        /// File or directory (default: the current directory).
        path: Option<PathBuf>,
        /// The output language.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        #[command(flatten)]
        manifests: ManifestArgs,
    },
    /// Check every `expect` line against the emitted policy; prints `N passed, M failed`.
    Test {
        /// File or directory (default: the current directory); with `--manifests DIR`, a file of `allow|deny SRC -> DST` lines.
        path: Option<PathBuf>,
        #[command(flatten)]
        manifests: ManifestArgs,
    },
    /// List the diagnostic codes, or explain one (`ztp codes Z0201`).
    Codes { code: Option<String> },
    /// Show what `apply` would change in the cluster.
    Plan {
        /// File or directory (default: the current directory).
        path: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Save the plan; `ztp apply FILE` applies exactly it.
        #[arg(long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 with no changes, 1 on errors, 2 with changes.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Unchanged lines shown around each change.
        #[arg(long, default_value_t = 3)]
        diff_context: usize,
    },
    /// Apply a program (or a saved plan) to the cluster, in an order that never opens an outage window.
    Apply {
        /// File or directory (default: the current directory), or a plan file from `ztp plan -out`.
        path: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Skip the confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Take fields other field managers own.
        #[arg(long)]
        force_conflicts: bool,
        /// How long to wait for a waypoint to be ready or bound, in seconds.
        #[arg(long, default_value_t = 300)]
        wait_timeout: u64,
        /// How long to wait for the stack's lock (`30s`, `5m`; `0` fails at once).
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        lock_timeout: std::time::Duration,
    },
    /// Remove every object of the stack (and ztp's labels from Namespaces and Services).
    Destroy {
        /// File or directory (default: the current directory); names the stack.
        path: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Skip the confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// How long to wait for the stack's lock (`30s`, `5m`; `0` fails at once).
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        lock_timeout: std::time::Duration,
    },
    /// Run the language server on standard input and output (for editors).
    Lsp,
    /// Check the cluster's Cilium and Istio installation against what ztp's policies need.
    Doctor {
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Remove the stack's lock left by a ztp that no longer runs (reads `yes` from standard input).
    ForceUnlock {
        /// The lock's ID, as the `Lock Info` block shows it.
        id: String,
        /// File or directory (default: the current directory); names the stack unless `--stack` does.
        path: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// `90`, `90s`, `5m`, `1h`, `1m30s`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("`{s}` is not a duration (like 30s, 5m, 1h)");
    if let Ok(n) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || s.is_empty() {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// How to reach the cluster.
#[derive(clap::Args, Clone)]
struct ConnectArgs {
    /// The kubeconfig file (default: `KUBECONFIG`, else `~/.kube/config`).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
}

/// How to reach the cluster and which ApplySet to use.
/// Questions about a directory of Kubernetes YAML instead of a program.
#[derive(clap::Args, Clone)]
struct ManifestArgs {
    /// Judge the Cilium, Istio and Gateway API objects under DIR (any author; multi-document YAML) instead of a program.
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// The mesh's trust domain, for the identities of workloads read from manifests.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// Istio's root namespace, for manifests.
    #[arg(long, default_value = "istio-system")]
    root_namespace: String,
}

#[derive(clap::Args, Clone)]
struct ClusterArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The stack name (default `cluster { stack }`, else the program's directory name).
    #[arg(long)]
    stack: Option<String>,
    /// Where the ApplySet parent Secret `ztp-<stack>` lives.
    #[arg(long, default_value = "istio-system")]
    applyset_namespace: String,
    /// Take over objects of the same name that are not ztp's.
    #[arg(long)]
    adopt: bool,
}

pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    match cli.command {
        Command::Check { path, message_format, deny_warnings } => check(path, message_format, deny_warnings, color),
        Command::Fmt { paths, check, stdin, message_format } => fmt(paths, check, stdin, message_format, color),
        Command::Build {
            path,
            output,
            format,
            annotate_waves,
            flux_source,
            flux_path,
            stack,
            message_format,
            deny_warnings,
        } => {
            let opts = BuildOptions { output, format, annotate_waves, flux_source, flux_path, stack, deny_warnings };
            build(path, opts, message_format, color)
        }
        Command::Codes { code } => explain_codes(code),
        Command::Lsp => crate::lsp::run(),
        Command::Test { path, manifests } => match manifests.manifests.clone() {
            Some(dir) => test_manifests(&dir, path, &manifests),
            None => test(path, color),
        },
        Command::Graph { path, format, manifests } => graph(path, format, &manifests, color),
        Command::Diff { paths, base, json, manifests } => diff(&paths, base.as_deref(), json, &manifests, color),
        Command::Explain { query, method, path, headers, json, manifests, pod_ip } => {
            explain(&query, ExplainFlags { method, http_path: path, headers, json, pod_ip, manifests }, color)
        }
        Command::Plan { path, cluster, json, out, detailed_exitcode, diff_context } => {
            let mut req = request(Verb::Plan, &cluster, color);
            req.json = json;
            req.out = out;
            req.detailed_exitcode = detailed_exitcode;
            req.diff_context = diff_context;
            cluster_command(path, &cluster, req, color)
        }
        Command::Apply { path, cluster, auto_approve, force_conflicts, wait_timeout, lock_timeout } => {
            let mut req = request(Verb::Apply, &cluster, color);
            req.lock.timeout = lock_timeout;
            req.auto_approve = auto_approve;
            req.force_conflicts = force_conflicts;
            req.apply.force_conflicts = force_conflicts;
            req.apply.wait_timeout = std::time::Duration::from_secs(wait_timeout);
            cluster_command(path, &cluster, req, color)
        }
        Command::Doctor { connect } => {
            let cluster = ClusterArgs { connect, stack: None, applyset_namespace: String::new(), adopt: false };
            let req = request(Verb::Doctor, &cluster, color);
            cluster_command(None, &cluster, req, color)
        }
        Command::ForceUnlock { id, path, cluster } => {
            let mut req = request(Verb::ForceUnlock, &cluster, color);
            req.unlock_id = id;
            cluster_command(path, &cluster, req, color)
        }
        Command::Destroy { path, cluster, auto_approve, lock_timeout } => {
            let mut req = request(Verb::Destroy, &cluster, color);
            req.lock.timeout = lock_timeout;
            req.auto_approve = auto_approve;
            cluster_command(path, &cluster, req, color)
        }
    }
}

fn request(verb: Verb, c: &ClusterArgs, color: bool) -> command::Request {
    let mut connect = ConnectOptions::new(c.connect.kubeconfig.clone(), c.connect.context.clone());
    connect.timeout = std::time::Duration::from_secs(c.connect.request_timeout.max(1));
    command::Request {
        verb,
        connect,
        stack: String::new(),
        applyset_namespace: c.applyset_namespace.clone(),
        adopt: c.adopt,
        auto_approve: false,
        force_conflicts: false,
        json: false,
        out: None,
        detailed_exitcode: false,
        diff_context: 3,
        color: color && std::io::stdout().is_terminal(),
        apply: Default::default(),
        lock: Default::default(),
        unlock_id: String::new(),
    }
}

/// Compiles the program (or reads a saved plan) and runs a cluster command.
fn cluster_command(path: Option<PathBuf>, c: &ClusterArgs, mut req: command::Request, color: bool) -> ExitCode {
    if let Some(s) = &c.stack
        && !valid_stack(s)
    {
        eprintln!("error: --stack `{s}` must be lower-case letters, digits and `-`, at most 40 characters");
        return ExitCode::from(2);
    }
    let path = path.unwrap_or_else(|| PathBuf::from("."));
    let source = match command::read_saved(&path) {
        _ if req.verb == Verb::Doctor => command::Source::Program(Vec::new()),
        _ if req.verb == Verb::ForceUnlock && c.stack.is_some() => {
            req.stack = c.stack.clone().unwrap_or_default();
            command::Source::Program(Vec::new())
        }
        Some(Ok(saved)) if req.verb == Verb::Apply => command::Source::Saved(Box::new(saved)),
        Some(Ok(_)) => {
            eprintln!("error: {} is a saved plan; only `ztp apply` takes one", path.display());
            return ExitCode::from(2);
        }
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        None => {
            let built = match driver::build(&RealFs, &path, c.stack.as_deref()) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let checked = &built.checked;
            print_diagnostics(&checked.diagnostics.sorted(), &checked.sources, MessageFormat::Human, color);
            let Some(manifests) = built.manifests else {
                let errors = checked.diagnostics.error_count();
                eprintln!("error: {} found; nothing planned", plural(errors, "error"));
                return ExitCode::from(1);
            };
            req.stack = checked.ir.as_ref().map_or_else(|| "ztp".to_string(), |ir| ir.stack.clone());
            // The program is not needed again: freed beside the requests.
            crate::par::drop_elsewhere(built.checked);
            command::Source::Program(manifests)
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    ExitCode::from(runtime.block_on(command::run(req, source)))
}

fn valid_stack(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Prints diagnostics: JSON lines on standard output (or standard error
/// when standard output carries the result, as for `fmt -`), reports on
/// standard error.
fn print_diagnostics(ds: &[Diagnostic], sources: &SourceMap, format: MessageFormat, color: bool) {
    print_diagnostics_to(ds, sources, format, color, false);
}

fn print_diagnostics_to(
    ds: &[Diagnostic],
    sources: &SourceMap,
    format: MessageFormat,
    color: bool,
    json_to_stderr: bool,
) {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    if format == MessageFormat::Human {
        for text in render::human_all(ds, sources, color) {
            let _ = write!(stderr, "{text}");
        }
        return;
    }
    for d in ds {
        let _ = if json_to_stderr {
            writeln!(stderr, "{}", render::json(d, sources))
        } else {
            writeln!(stdout, "{}", render::json(d, sources))
        };
    }
}

/// Writes to standard output; a closed pipe (`ztp ... | head`) is not an error.
fn write_out(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

struct BuildOptions {
    output: String,
    format: OutputFormat,
    annotate_waves: Option<WaveStyle>,
    flux_source: String,
    flux_path: Option<String>,
    stack: Option<String>,
    deny_warnings: bool,
}

fn build(path: Option<PathBuf>, o: BuildOptions, message_format: MessageFormat, color: bool) -> ExitCode {
    if let Some(s) = &o.stack
        && !valid_stack(s)
    {
        eprintln!("error: --stack `{s}` must be lower-case letters, digits and `-`, at most 40 characters");
        return ExitCode::from(2);
    }
    let path = path.unwrap_or_else(|| PathBuf::from("."));
    let built = match driver::build(&RealFs, &path, o.stack.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let checked = &built.checked;
    print_diagnostics(&checked.diagnostics.sorted(), &checked.sources, message_format, color);
    let errors = checked.diagnostics.error_count();
    let warnings = checked.diagnostics.warning_count();
    let Some(mut manifests) = built.manifests else {
        if message_format == MessageFormat::Human {
            eprintln!("error: {} found, {}; nothing written", plural(errors, "error"), plural(warnings, "warning"));
        }
        return ExitCode::from(1);
    };
    if o.deny_warnings && warnings > 0 {
        eprintln!("error: {} and --deny-warnings; nothing written", plural(warnings, "warning"));
        return ExitCode::from(1);
    }
    let format = match o.format {
        OutputFormat::Yaml => output::Format::Yaml,
        OutputFormat::Json => output::Format::Json,
    };
    let waves = match o.annotate_waves {
        None => output::Waves::None,
        Some(WaveStyle::Argocd) => output::Waves::ArgoCd,
        Some(WaveStyle::Flux) => {
            let out_dir = Path::new(&o.output);
            if o.flux_path.is_none() && out_dir.is_absolute() {
                eprintln!(
                    "error: `-o {}` is absolute; give `--flux-path`, the output directory's path in the Git repository",
                    o.output
                );
                return ExitCode::from(2);
            }
            let path = o.flux_path.clone().unwrap_or_else(|| format!("./{}", normalize(out_dir).display()));
            output::Waves::Flux { source: o.flux_source.clone(), path: path.trim_end_matches('/').to_string() }
        }
    };
    if waves == output::Waves::ArgoCd {
        output::annotate_argocd(&mut manifests);
    }
    if o.output == "-" {
        if matches!(waves, output::Waves::Flux { .. }) {
            eprintln!("error: `--annotate-waves flux` writes a directory per wave; give `-o DIR`");
            return ExitCode::from(2);
        }
        // A closed pipe (`ztp build -o - | head`) is not an error.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        let _ = output::write_stream(&manifests, format, &mut out).and_then(|()| out.flush());
        // The process ends here: freeing every object one by one would only
        // add time to it.
        std::mem::forget(manifests);
        return leaving(built.checked, ExitCode::SUCCESS);
    }
    let stack = checked.ir.as_ref().map_or("ztp", |ir| ir.stack.as_str());
    let files = output::files(&manifests, format, &waves, stack);
    match output::write_dir(Path::new(&o.output), &files) {
        Ok(written) => {
            if message_format == MessageFormat::Human {
                eprintln!(
                    "ok: {} written to {} ({} files){}",
                    plural(manifests.len(), "object"),
                    o.output,
                    written.len(),
                    if warnings > 0 { format!("; {}", plural(warnings, "warning")) } else { String::new() }
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", o.output);
            ExitCode::from(2)
        }
    }
}

fn check(path: Option<PathBuf>, format: MessageFormat, deny_warnings: bool, color: bool) -> ExitCode {
    let path = path.unwrap_or_else(|| PathBuf::from("."));
    let checked = match driver::check(&RealFs, &path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let ds = checked.diagnostics.sorted();
    print_diagnostics(&ds, &checked.sources, format, color);
    let errors = checked.diagnostics.error_count();
    let warnings = checked.diagnostics.warning_count();
    if format == MessageFormat::Human {
        if errors > 0 {
            eprintln!("error: {} found, {}", plural(errors, "error"), plural(warnings, "warning"));
        } else if deny_warnings && warnings > 0 {
            eprintln!("error: {} and --deny-warnings", plural(warnings, "warning"));
        } else if let Some(p) = &checked.program {
            let workloads: usize = p.namespaces.iter().map(|n| n.workloads.len()).sum();
            let gateways: usize = p.namespaces.iter().map(|n| n.gateways.len()).sum();
            eprintln!(
                "ok: {} checked: {}, {}, {}, {}, {}{}",
                plural(checked.file_count, "file"),
                plural(p.namespaces.len(), "namespace"),
                plural(workloads, "workload"),
                plural(gateways, "gateway"),
                plural(p.flows.len(), "flow"),
                plural(p.expects.len(), "expectation"),
                if warnings > 0 { format!("; {}", plural(warnings, "warning")) } else { String::new() }
            );
        }
    }
    let code = if errors > 0 || (deny_warnings && warnings > 0) { ExitCode::from(1) } else { ExitCode::SUCCESS };
    leaving(checked, code)
}

/// `code`, leaving `checked` to the OS: the process ends with the command,
/// and freeing a large program object by object is a tenth of its check.
fn leaving(checked: driver::Checked, code: ExitCode) -> ExitCode {
    std::mem::forget(checked);
    code
}

/// `ztp explain`'s flags (they may also arrive inside the query).
struct ExplainFlags {
    method: Option<String>,
    http_path: Option<String>,
    headers: Vec<String>,
    json: bool,
    pod_ip: bool,
    manifests: ManifestArgs,
}

/// `ztp explain [PATH] SRC -> DST[:PORT]`.
fn explain(query: &[String], flags: ExplainFlags, color: bool) -> ExitCode {
    // `->` must be quoted in a shell ('->'), so also take `SRC->DST` in
    // one argument, or just `[PATH] SRC DST`.
    // Flags after the query arrive inside it (the arrow needs hyphen values).
    let ExplainFlags { mut method, mut http_path, mut headers, mut json, mut pod_ip, mut manifests } = flags;
    let mut rest = Vec::new();
    let mut it = query.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match flag {
            "--method" => method = value(),
            "--path" => http_path = value(),
            "--header" => headers.extend(value()),
            "--manifests" => manifests.manifests = value().map(PathBuf::from),
            "--trust-domain" => manifests.trust_domain = value().unwrap_or_default(),
            "--root-namespace" => manifests.root_namespace = value().unwrap_or_default(),
            "--json" => json = true,
            "--pod-ip" => pod_ip = true,
            _ => rest.push(a.clone()),
        }
    }
    let joined = rest.join(" ");
    let words: Vec<&str> = match joined.split_once("->") {
        Some((left, right)) => left.split_whitespace().chain(right.split_whitespace()).collect(),
        None => joined.split_whitespace().collect(),
    };
    let headers = match headers_of(&headers) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let render = |explained: &[crate::verify::report::Explained]| {
        write_out(&if json {
            crate::verify::report::explain_json(explained)
        } else {
            crate::verify::report::explain_text(explained)
        });
        ExitCode::SUCCESS
    };
    if let Some(dir) = &manifests.manifests {
        let [src, dst] = words.as_slice() else {
            eprintln!("error: expected `SRC '->' DST[:PORT]` with --manifests, got `{joined}`");
            return ExitCode::from(2);
        };
        let estate = match open_estate(dir, &manifests) {
            Ok(e) => e,
            Err(code) => return code,
        };
        let request = match request_of(method.as_deref(), http_path.as_deref()) {
            Ok(r) => r,
            Err(code) => return code,
        };
        let model = estate.model();
        return match crate::verify::estate::explain(&estate, &model, src, dst, request.as_ref(), &headers, pod_ip) {
            Ok(explained) => render(&explained),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let (path, src, dst) = match words.as_slice() {
        [src, dst] => (PathBuf::from("."), *src, *dst),
        [path, src, dst] => (PathBuf::from(path), *src, *dst),
        _ => {
            eprintln!("error: expected `[PATH] SRC '->' DST[:PORT]`, got `{joined}`");
            return ExitCode::from(2);
        }
    };
    let checked = match lowered(&RealFs, &path, color) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(ir) = &checked.ir else { return ExitCode::from(1) };
    let question =
        crate::verify::query::source(ir, src).and_then(|s| Ok((s, crate::verify::query::destination(ir, dst)?)));
    let (peer, dest) = match question {
        Ok(q) => q,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let http = match request_of(method.as_deref(), http_path.as_deref()) {
        Err(code) => return code,
        Ok(None) if headers.is_empty() => crate::verify::report::default_http(ir, &peer, &dest),
        Ok(None) => crate::verify::report::default_http(ir, &peer, &dest)
            .map(|h| crate::ir::Http { headers: headers.clone(), ..h })
            .or_else(|| Some(crate::ir::Http { methods: Vec::new(), paths: Vec::new(), headers: headers.clone() })),
        Ok(Some((m, p))) => {
            let Some((_, m)) = crate::value::HTTP_METHODS.iter().find(|(name, _)| *name == m) else {
                return ExitCode::from(2);
            };
            Some(crate::ir::Http { methods: vec![*m], paths: vec![p], headers: headers.clone() })
        }
    };
    let explained = match &checked.manifests {
        Some(ms) => crate::verify::report::explain_over(ir, ms, &peer, &dest, http.as_ref()),
        None => crate::verify::report::explain(ir, &peer, &dest, http.as_ref()),
    };
    let code = render(&explained);
    leaving(checked, code)
}

/// `--header NAME:VALUE` flags as the request's headers, names lower-case.
fn headers_of(flags: &[String]) -> Result<std::collections::BTreeMap<String, String>, ExitCode> {
    let mut out = std::collections::BTreeMap::new();
    for h in flags {
        let Some((name, value)) = h.split_once(':') else {
            eprintln!("error: `--header {h}`: write a header as `NAME:VALUE`");
            return Err(ExitCode::from(2));
        };
        let (name, value) = (name.trim(), value.trim());
        if let Some(d) =
            crate::value::check_header(name, crate::source::Span::default(), value, crate::source::Span::default())
        {
            eprintln!("error: `--header {h}`: {}", d.message);
            return Err(ExitCode::from(2));
        }
        out.insert(name.to_ascii_lowercase(), value.to_string());
    }
    Ok(out)
}

/// `--method` and `--path` as a request (`GET` and `/` where one is left out).
fn request_of(method: Option<&str>, path: Option<&str>) -> Result<Option<(String, String)>, ExitCode> {
    if method.is_none() && path.is_none() {
        return Ok(None);
    }
    let m = method.unwrap_or("GET").to_ascii_uppercase();
    if !crate::value::HTTP_METHODS.iter().any(|(name, _)| *name == m) {
        eprintln!("error: `{m}` is not an HTTP method");
        return Err(ExitCode::from(2));
    }
    Ok(Some((m, path.unwrap_or("/").to_string())))
}

/// Reads a manifest directory, printing its problems; none of it is
/// judged when one is an error.
fn open_estate(dir: &Path, args: &ManifestArgs) -> Result<crate::verify::estate::Estate, ExitCode> {
    let estate = crate::verify::estate::Estate::read(dir, &args.trust_domain, &args.root_namespace).map_err(|e| {
        eprintln!("error: {}: {e}", dir.display());
        ExitCode::from(2)
    })?;
    estate_problems(estate, &dir.display().to_string())
}

fn estate_problems(
    estate: crate::verify::estate::Estate,
    what: &str,
) -> Result<crate::verify::estate::Estate, ExitCode> {
    eprint!("{}", estate.set.report());
    if estate.set.has_errors() {
        eprintln!("error: {what} has errors; nothing was judged");
        return Err(ExitCode::from(1));
    }
    Ok(estate)
}

/// Checks the program at `path` for a command that needs its IR: the
/// diagnostics are printed and an exit code returned when there is none
/// (failed expectations aside, which leave the IR in place).
/// The program at `path`, checked and lowered for a command that asks its
/// own questions of it: its `expect` lines are not judged.
fn lowered(fs: &dyn crate::resolve::load::FileSystem, path: &Path, color: bool) -> Result<driver::Checked, ExitCode> {
    let checked = driver::check_unjudged(fs, path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    if checked.ir.is_none() {
        print_diagnostics(&checked.diagnostics.sorted(), &checked.sources, MessageFormat::Human, color);
        eprintln!("error: {} has errors", path.display());
        return Err(ExitCode::from(1));
    }
    Ok(checked)
}

/// One side of `ztp diff`: a program or a manifest set, on disk or at a
/// git revision.
enum Side {
    Program(Box<driver::Checked>),
    Manifests(crate::verify::estate::Estate),
}

/// Whether `path` holds manifests rather than a program: a YAML file, or a
/// directory with YAML and no `.ztp` file.
fn holds_manifests(files: &[PathBuf], path: &Path) -> bool {
    let ext = |p: &Path, e: &[&str]| p.extension().is_some_and(|x| e.iter().any(|e| x == *e));
    if ext(path, &["yaml", "yml", "json"]) {
        return true;
    }
    !files.iter().any(|f| ext(f, &["ztp"])) && files.iter().any(|f| ext(f, &["yaml", "yml", "json"]))
}

fn side(path: &Path, rev: Option<&str>, args: &ManifestArgs, color: bool) -> Result<Side, ExitCode> {
    let shown = match rev {
        Some(r) => format!("{}@{r}", path.display()),
        None => path.display().to_string(),
    };
    match rev {
        None => {
            let mut files = Vec::new();
            if path.is_dir() {
                let _ = collect_files(path, &mut files, 0);
            }
            if holds_manifests(&files, path) {
                return open_estate(path, args).map(Side::Manifests);
            }
            lowered(&RealFs, path, color).map(|c| Side::Program(Box::new(c)))
        }
        Some(rev) => {
            let at = crate::verify::revision::read(path, rev).map_err(|e| {
                eprintln!("error: {e}");
                ExitCode::from(2)
            })?;
            let names: Vec<PathBuf> = at.files.iter().map(|(p, _)| p.clone()).collect();
            if holds_manifests(&names, &at.path) {
                let texts: Vec<(String, String)> = at
                    .files
                    .iter()
                    .filter(|(p, _)| p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
                    .map(|(p, b)| {
                        let rel = p.strip_prefix(&at.path).unwrap_or(p);
                        let name = if rel.as_os_str().is_empty() { p.as_path() } else { rel };
                        (name.to_string_lossy().into_owned(), String::from_utf8_lossy(b).into_owned())
                    })
                    .collect();
                let estate =
                    crate::verify::estate::Estate::from_files(&texts, &args.trust_domain, &args.root_namespace);
                return estate_problems(estate, &shown).map(Side::Manifests);
            }
            let fs = crate::resolve::load::MemoryFs { files: at.files.into_iter().collect() };
            lowered(&fs, &at.path, color).map(|c| Side::Program(Box::new(c)))
        }
    }
}

/// Every file under `dir`, for telling a program from manifests.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> std::io::Result<()> {
    if depth > 8 {
        return Ok(());
    }
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect_files(&p, out, depth + 1)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// `ztp diff OLD NEW`, or `ztp diff --base REV [NEW]`.
fn diff(paths: &[PathBuf], base: Option<&str>, json: bool, args: &ManifestArgs, color: bool) -> ExitCode {
    let here = PathBuf::from(".");
    let (old, new, old_rev) = match (paths, base) {
        ([old, new], None) => (old, new, None),
        ([], Some(rev)) => (&here, &here, Some(rev)),
        ([new], Some(rev)) => (new, new, Some(rev)),
        _ => {
            eprintln!("error: expected `ztp diff OLD NEW` or `ztp diff --base REV [NEW]`");
            return ExitCode::from(1);
        }
    };
    let sides = side(old, old_rev, args, color).and_then(|o| Ok((o, side(new, None, args, color)?)));
    // Exit 2 means "changed" here, so every error is 1.
    let changes = match sides {
        Err(_) => return ExitCode::from(1),
        Ok((Side::Program(o), Side::Program(n))) => {
            let (Some(old_ir), Some(new_ir)) = (&o.ir, &n.ir) else { return ExitCode::from(1) };
            let (old_ms, new_ms) = (crate::backend::emit(old_ir), crate::backend::emit(new_ir));
            crate::verify::diff::run(
                &crate::verify::diff::Version { ir: old_ir, manifests: &old_ms },
                &crate::verify::diff::Version { ir: new_ir, manifests: &new_ms },
            )
        }
        Ok((Side::Manifests(o), Side::Manifests(n))) => crate::verify::estate::diff(&o, &n),
        Ok(_) => {
            eprintln!("error: compare a program with a program, or manifests with manifests");
            return ExitCode::from(1);
        }
    };
    write_out(&if json {
        crate::verify::report::diff_json(&changes)
    } else {
        crate::verify::report::diff_text(&changes)
    });
    if changes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) }
}

/// `ztp graph`.
fn graph(path: Option<PathBuf>, format: GraphFormat, args: &ManifestArgs, color: bool) -> ExitCode {
    let format = match format {
        GraphFormat::Dot => crate::graph::Format::Dot,
        GraphFormat::Mermaid => crate::graph::Format::Mermaid,
    };
    if let Some(dir) = &args.manifests {
        let estate = match open_estate(dir, args) {
            Ok(e) => e,
            Err(code) => return code,
        };
        let title = dir.file_name().map_or_else(|| "manifests".to_string(), |n| n.to_string_lossy().into_owned());
        write_out(&crate::verify::estate::graph(&estate, &estate.model(), &title, format));
        return ExitCode::SUCCESS;
    }
    let checked = match lowered(&RealFs, &path.unwrap_or_else(|| PathBuf::from(".")), color) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(ir) = &checked.ir else { return ExitCode::from(1) };
    write_out(&crate::graph::render(ir, format));
    ExitCode::SUCCESS
}

/// `ztp test --manifests DIR FILE`: the expectations of FILE judged over
/// the manifests under DIR.
fn test_manifests(dir: &Path, file: Option<PathBuf>, args: &ManifestArgs) -> ExitCode {
    let Some(file) = file else {
        eprintln!("error: `ztp test --manifests DIR FILE` needs a file of `allow|deny SRC -> DST` lines");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let estate = match open_estate(dir, args) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let mut sources = SourceMap::new();
    let name = file.display().to_string();
    let (expectations, mut problems) = crate::verify::estate::parse_expectations(&name, &text, &mut sources);
    let model = estate.model();
    let (outcomes, unknown) = crate::verify::estate::run_expectations(&estate, &model, &expectations, &sources);
    problems.extend(unknown);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!("error: {name} has errors; no expectation was judged");
        return ExitCode::from(1);
    }
    let (out, failed) = crate::verify::report::test_text(&outcomes, &sources);
    write_out(&out);
    if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// `ztp test`: every expectation with its outcome, then the counts. Other
/// errors are printed as `check` prints them, and nothing is judged.
fn test(path: Option<PathBuf>, color: bool) -> ExitCode {
    let path = path.unwrap_or_else(|| PathBuf::from("."));
    let checked = match driver::check(&RealFs, &path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let others: Vec<Diagnostic> =
        checked.diagnostics.sorted().into_iter().filter(|d| d.code != codes::EXPECTATION_FAILED).collect();
    if others.iter().any(|d| d.severity == crate::diag::Severity::Error)
        || checked.expectations.is_empty() && checked.program.is_none()
    {
        print_diagnostics(&others, &checked.sources, MessageFormat::Human, color);
        eprintln!("error: the program has errors; no expectation was judged");
        return ExitCode::from(1);
    }
    let (out, failed) = crate::verify::report::test_text(&checked.expectations, &checked.sources);
    write_out(&out);
    leaving(checked, if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The `.ztp` files under `path`, recursively (hidden directories and
/// `target/` skipped), in sorted order.
fn ztp_files(
    path: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut std::collections::BTreeSet<PathBuf>,
) -> std::io::Result<()> {
    if !path.is_dir() {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if seen.insert(real) {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    // A directory reached twice (a symlink loop) is walked once.
    if !seen.insert(std::fs::canonicalize(path)?) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if !name.starts_with('.') && name != "target" {
                ztp_files(&p, out, seen)?;
            }
        } else if p.extension().is_some_and(|e| e == "ztp") {
            ztp_files(&p, out, seen)?;
        }
    }
    Ok(())
}

fn fmt(paths: Vec<PathBuf>, check: bool, stdin: bool, format: MessageFormat, color: bool) -> ExitCode {
    let use_stdin = stdin || paths.iter().any(|p| p.as_os_str() == "-");
    if use_stdin {
        if paths.iter().any(|p| p.as_os_str() != "-") {
            eprintln!("error: format either standard input or files, not both");
            return ExitCode::from(2);
        }
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("error: cannot read standard input: {e}");
            return ExitCode::from(2);
        }
        return match driver::format_text("<stdin>", &text) {
            Formatted::Ok(out) => {
                if check {
                    if out != text {
                        write_out("<stdin>\n");
                        return ExitCode::from(1);
                    }
                } else {
                    write_out(&out);
                }
                ExitCode::SUCCESS
            }
            Formatted::Invalid(sources, ds) => {
                print_diagnostics_to(&ds, &sources, format, color, true);
                // Editors replace the buffer with stdout: give the text back unchanged.
                if !check {
                    write_out(&text);
                }
                ExitCode::from(1)
            }
        };
    }
    let roots = if paths.is_empty() { vec![PathBuf::from(".")] } else { paths };
    let mut files = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in &roots {
        if let Err(e) = ztp_files(r, &mut files, &mut seen) {
            eprintln!("error: cannot read {}: {e}", r.display());
            return ExitCode::from(2);
        }
    }
    let mut failed = false;
    let mut io_error = false;
    let mut changed = 0;
    // Every file is read, then all are formatted together; what each one
    // prints comes out in file order, as from a loop.
    let mut read = Vec::new();
    let mut texts: Vec<(String, String)> = Vec::new();
    for f in files {
        let name = normalize(&f).display().to_string();
        let problem = match std::fs::read(&f).map(String::from_utf8) {
            Ok(Ok(t)) => {
                texts.push((name.clone(), t));
                None
            }
            Ok(Err(_)) => Some(Err(())),
            Err(e) => Some(Ok(e)),
        };
        read.push((f, name, problem));
    }
    let mut results = driver::format_texts(&texts).into_iter().zip(texts.iter().map(|(_, t)| t));
    for (f, name, problem) in read {
        match problem {
            None => {}
            Some(Err(())) => {
                eprintln!("error: {name} is not valid UTF-8; left unchanged");
                failed = true;
                continue;
            }
            Some(Ok(e)) => {
                eprintln!("error: cannot read {name}: {e}");
                io_error = true;
                continue;
            }
        }
        let Some((result, text)) = results.next() else { break };
        match result {
            Formatted::Ok(out) if out == *text => {}
            Formatted::Ok(out) => {
                changed += 1;
                if check {
                    write_out(&format!("{name}\n"));
                } else if let Err(e) = std::fs::write(&f, out) {
                    eprintln!("error: cannot write {name}: {e}");
                    io_error = true;
                }
            }
            Formatted::Invalid(sources, ds) => {
                print_diagnostics(&ds, &sources, format, color);
                eprintln!("error: {name} does not parse; left unchanged");
                failed = true;
            }
        }
    }
    if io_error {
        ExitCode::from(2)
    } else if failed || (check && changed > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn explain_codes(code: Option<String>) -> ExitCode {
    match code {
        None => {
            for c in codes::TABLE {
                write_out(&format!("{}  {:<7}  {}\n", c.code, c.severity.as_str(), c.title));
            }
            ExitCode::SUCCESS
        }
        Some(text) => match codes::Code::parse(&text).and_then(|c| c.info()) {
            Some(info) => {
                write_out(info.doc);
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: there is no diagnostic code `{text}`; `ztp codes` lists them");
                ExitCode::from(2)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_like_terraforms() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        for bad in ["", "s", "5x", "1.5m", "-3s", "5m3", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
