//! The cluster commands end to end: `plan`, `apply` and `destroy`. Each
//! connects, runs preflight, computes a plan, and (for apply and destroy)
//! asks for confirmation and executes it. Saved plans are written and read
//! here, and refused when the cluster moved since they were made. The CLI
//! only parses arguments and calls [`run`].

use super::apply;
use super::applyset::Parent;
use super::client::{Cluster, ConnectOptions};
use super::lock::{self, Lock, LockOptions};
use super::plan::{self, Desired, Inputs, Plan};
use crate::manifest::Manifest;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, IsTerminal, Write};
use std::mem::ManuallyDrop;
use std::path::PathBuf;

/// Which command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Plan,
    Apply,
    Destroy,
    /// `force-unlock ID`.
    ForceUnlock,
    /// `doctor`.
    Doctor,
}

/// Everything the cluster commands take.
#[derive(Clone, Debug)]
pub struct Request {
    pub verb: Verb,
    pub connect: ConnectOptions,
    pub stack: String,
    pub applyset_namespace: String,
    pub adopt: bool,
    pub auto_approve: bool,
    pub force_conflicts: bool,
    pub json: bool,
    pub out: Option<PathBuf>,
    pub detailed_exitcode: bool,
    pub diff_context: usize,
    pub color: bool,
    pub apply: apply::Options,
    pub lock: LockOptions,
    /// `force-unlock`: the lock ID to remove.
    pub unlock_id: String,
}

/// A plan saved with `plan -out FILE`: the plan and the exact objects it
/// applies, so `apply FILE` needs no compiler.
#[derive(Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub ztp_version: String,
    pub plan: Plan,
    pub desired: Vec<Desired>,
}

/// What to plan from: a compiled program, or a saved plan.
pub enum Source {
    Program(Vec<Manifest>),
    Saved(Box<SavedPlan>),
}

/// Reads a saved plan, or `None` when `path` is not one.
pub fn read_saved(path: &std::path::Path) -> Option<Result<SavedPlan, String>> {
    if path.is_dir() {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    if !text.trim_start().starts_with('{') {
        return None;
    }
    Some(
        serde_json::from_str::<SavedPlan>(&text)
            .map_err(|e| format!("{} is not a ztp plan file: {e}", path.display()))
            .and_then(|p| {
                if p.format_version != plan::FORMAT_VERSION {
                    Err(format!(
                        "{} is a plan of format {}, this ztp reads {}",
                        path.display(),
                        p.format_version,
                        plan::FORMAT_VERSION
                    ))
                } else {
                    Ok(p)
                }
            }),
    )
}

fn say(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Runs a cluster command; returns the exit code.
pub async fn run(req: Request, source: Source) -> u8 {
    match run_inner(&req, source).await {
        Ok(code) => code,
        Err(e) => {
            say(&format!("error: {e}\n"));
            1
        }
    }
}

async fn run_inner(req: &Request, source: Source) -> Result<u8, String> {
    let cluster = Cluster::connect(&req.connect).await.map_err(|e| e.to_string())?;
    match req.verb {
        Verb::ForceUnlock => return unlock(req, &cluster).await,
        Verb::Doctor => return super::doctor::run(&cluster).await,
        _ => {}
    }
    let kinds = plan::discover(&cluster).await.map_err(|e| e.to_string())?;
    if req.verb == Verb::Plan {
        return planned(req, source, &cluster, &kinds, None).await;
    }
    // apply and destroy hold the stack's lock from before the plan is read
    // until the last write; plan only reads and takes no lock.
    let (namespace, stack) = match &source {
        Source::Program(_) => (req.applyset_namespace.clone(), req.stack.clone()),
        Source::Saved(s) => (s.plan.parent.namespace.clone(), s.plan.stack.clone()),
    };
    let lease = kinds
        .get(&("coordination.k8s.io/v1".to_string(), "Lease".to_string()))
        .ok_or("the cluster does not serve Leases (coordination.k8s.io/v1)")?;
    let operation = if req.verb == Verb::Destroy { "destroy" } else { "apply" };
    let lock = Lock::acquire(&cluster, lease, &namespace, &stack, operation, &req.lock, &|l| say(&format!("{l}\n")))
        .await
        .map_err(|e| e.to_string())?;
    let result = planned(req, source, &cluster, &kinds, Some(&lock)).await;
    let released = lock.release().await;
    match (result, released) {
        (Ok(code), Err(e)) => {
            say(&format!("warning: {e}\n"));
            Ok(code)
        }
        (result, _) => result,
    }
}

async fn planned(
    req: &Request,
    source: Source,
    cluster: &Cluster,
    kinds: &plan::Kinds,
    lock: Option<&Lock>,
) -> Result<u8, String> {
    let destroy = req.verb == Verb::Destroy;
    let (desired, saved, fresh) = match source {
        Source::Program(ms) => {
            let parent = Parent::new(&req.stack, &req.applyset_namespace);
            let inputs = Inputs { stack: &req.stack, parent: parent.clone(), adopt: req.adopt, destroy };
            // The objects are built on the other cores while the cluster
            // is read; the manifests are freed there after.
            let heads = Desired::heads(&ms);
            let id = parent.id.clone();
            let objects = tokio::task::spawn_blocking(move || Desired::objects(&ms, &id));
            let state = plan::read_live(cluster, kinds, &heads, &inputs).await.map_err(|e| e.to_string())?;
            let objects = objects.await.map_err(|e| format!("internal error: {e}"))?;
            let desired = Desired::with_objects(heads, objects);
            let fresh = plan::decide(cluster, kinds, &desired, state, &inputs).await.map_err(|e| e.to_string())?;
            (desired, None, fresh)
        }
        Source::Saved(s) => {
            let p = &s.plan.parent;
            let parent = Parent { name: p.name.clone(), namespace: p.namespace.clone(), id: p.id.clone() };
            let stack = s.plan.stack.clone();
            let inputs = Inputs { stack: &stack, parent, adopt: req.adopt, destroy };
            let fresh = plan::compute(cluster, kinds, &s.desired, &inputs).await.map_err(|e| e.to_string())?;
            (s.desired, Some(s.plan), fresh)
        }
    };
    // The process ends with this command, and the OS takes its memory back
    // at once; freeing the hundreds of thousands of JSON values of a large
    // plan one by one would take a good part of a second.
    let desired = ManuallyDrop::new(desired);
    let from_saved_plan = saved.is_some();
    let plan = ManuallyDrop::new(match saved {
        Some(saved) => {
            stale(&saved, &fresh, &cluster.server).map_err(|why| format!("Saved plan is stale: {why}"))?;
            std::mem::forget(fresh);
            saved
        }
        None => fresh,
    });

    if req.verb == Verb::Plan && req.json {
        print(&plan::to_json(&plan));
    } else {
        print(&plan::render(&plan, req.diff_context, req.color));
    }
    if let Some(path) = &req.out {
        let saved = SavedPlan {
            format_version: plan::FORMAT_VERSION,
            ztp_version: env!("CARGO_PKG_VERSION").to_string(),
            plan: (*plan).clone(),
            desired: (*desired).clone(),
        };
        let text = serde_json::to_string_pretty(&saved).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        say(&format!("Saved the plan to {}; `ztp apply {}` applies exactly it.\n", path.display(), path.display()));
    }
    if req.verb == Verb::Plan {
        return Ok(if req.detailed_exitcode && plan.has_changes() { 2 } else { 0 });
    }
    if !plan.has_changes() {
        return Ok(0);
    }
    if plan.conflicts() > 0 && !req.force_conflicts {
        return Err(format!(
            "{} with other field managers (shown above); nothing changed. Resolve them, or take the fields with --force-conflicts",
            if plan.conflicts() == 1 { "1 conflict".to_string() } else { format!("{} conflicts", plan.conflicts()) }
        ));
    }
    // Like Terraform, a saved plan was reviewed when it was made.
    if !req.auto_approve && !from_saved_plan {
        confirm(req.verb)?;
    }
    say("\n");
    let mut options = req.apply.clone();
    if let Some(lock) = lock {
        options.lock_lost = lock.lost_flag();
    }
    let outcome = apply::execute(cluster, kinds, &plan, &options, destroy, &|line| say(&format!("{line}\n"))).await;
    for (id, why) in &outcome.failed {
        say(&format!("error: {id}: {why}\n"));
    }
    if !outcome.not_attempted.is_empty() {
        say("Not attempted:\n");
        for id in &outcome.not_attempted {
            say(&format!("  {id}\n"));
        }
    }
    let verb = if destroy { "Destroy" } else { "Apply" };
    if outcome.failed.is_empty() {
        say(&format!("\n{verb} complete! {}.\n", outcome.summary()));
        Ok(0)
    } else {
        say(&format!("\n{verb} failed: {}. Running it again converges.\n", outcome.summary()));
        Ok(1)
    }
}

/// `ztp force-unlock ID`: shows the lock and deletes it after a typed
/// `yes`, only when ID is its holder.
async fn unlock(req: &Request, cluster: &Cluster) -> Result<u8, String> {
    let wanted = [("coordination.k8s.io/v1".to_string(), "Lease".to_string())];
    let kinds = cluster
        .discover(&wanted)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the cluster does not serve Leases (coordination.k8s.io/v1)".to_string())?;
    let lease = kinds.values().next().ok_or("the cluster does not serve Leases")?;
    let namespace = &req.applyset_namespace;
    let info =
        lock::inspect(cluster, lease, namespace, &req.stack).await.map_err(|e| e.to_string())?.ok_or_else(|| {
            format!("the stack `{}` is not locked (no Lease {namespace}/{})", req.stack, lock::lease_name(&req.stack))
        })?;
    if info.id != req.unlock_id {
        return Err(format!(
            "the lock is held by `{}`, not `{}`; nothing changed\n\n{}",
            if info.id.is_empty() { "nobody" } else { &info.id },
            req.unlock_id,
            info.block()
        ));
    }
    say(&format!(
        "{}\nRemoving this lock lets another apply or destroy write the stack while this holder may\nstill be writing. Do this only if no ztp holds it any more.\n\nRemove the lock? Only 'yes' is accepted.\n  Enter a value: ",
        info.block()
    ));
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| e.to_string())?;
    if line.trim() != "yes" {
        return Err("not confirmed; the lock is kept".into());
    }
    lock::force_unlock(cluster, lease, namespace, &req.stack, &req.unlock_id).await?;
    say("\nThe lock has been removed. The stack is unlocked.\n");
    Ok(0)
}

/// Terraform's prompt: only `yes` proceeds; without a terminal, nothing does.
fn confirm(verb: Verb) -> Result<(), String> {
    let what = if verb == Verb::Destroy { "Destroy every object of this stack?" } else { "Apply these changes?" };
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "{what} needs confirmation, and standard input is not a terminal; nothing changed. Pass --auto-approve"
        ));
    }
    say(&format!("\n{what} Only 'yes' is accepted.\n  Enter a value: "));
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| e.to_string())?;
    if line.trim() == "yes" { Ok(()) } else { Err("not confirmed; nothing changed".into()) }
}

/// Whether the cluster still is what the saved plan saw.
fn stale(saved: &Plan, fresh: &Plan, server: &str) -> Result<(), String> {
    if saved.ztp_version != env!("CARGO_PKG_VERSION") {
        return Err(format!("it was made by ztp {}, this is {}", saved.ztp_version, env!("CARGO_PKG_VERSION")));
    }
    if saved.server != server {
        return Err(format!("it was made against {}, not {server}", saved.server));
    }
    if saved.parent.id != fresh.parent.id {
        return Err(format!("it is for ApplySet {}, not {}", saved.parent.id, fresh.parent.id));
    }
    if saved.parent.resource_version != fresh.parent.resource_version {
        return Err(format!("the ApplySet parent secret/{} changed since the plan was made", saved.parent.name));
    }
    let key = |c: &plan::Change| (c.kind.clone(), c.namespace.clone(), c.name.clone());
    let fresh_by: std::collections::BTreeMap<_, _> = fresh.changes.iter().map(|c| (key(c), c)).collect();
    for s in &saved.changes {
        let Some(f) = fresh_by.get(&key(s)) else {
            return Err(format!("{} is no longer part of the plan", s.id()));
        };
        if s.uid != f.uid {
            return Err(match (&s.uid, &f.uid) {
                (None, Some(_)) => format!("{} was created since", s.id()),
                (Some(_), None) => format!("{} was deleted since", s.id()),
                _ => format!("{} was replaced since", s.id()),
            });
        }
        if s.live_digest != f.live_digest {
            return Err(format!("{} was changed since", s.id()));
        }
    }
    if fresh.changes.len() != saved.changes.len() {
        return Err("objects of the stack were added since".into());
    }
    Ok(())
}
