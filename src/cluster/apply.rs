//! Applying a plan: the parent widened first, then every change in its
//! order (upserts by wave, waypoints made ready before anything uses them,
//! prunes last in reverse wave order), and the parent narrowed only after a
//! fully successful run.
//!
//! A change that fails stops the later groups: the outcome says what was
//! applied, what failed and what was not attempted, and running again
//! converges. Nothing here decides *what* to change; that is `plan`.

use super::applyset::{PART_OF_LABEL, Parent, Record};
use super::client::{Cluster, Deleted, Error};
use super::plan::{Action, Change, Kinds, ParentState, Plan};
use super::{at, meta_str};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How to apply.
#[derive(Clone, Debug)]
pub struct Options {
    pub force_conflicts: bool,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// How long to wait for a waypoint to become ready or bound.
    pub wait_timeout: Duration,
    /// How often readiness is polled, at most (it starts at 100 ms).
    pub poll: Duration,
    /// Set when the stack's lock is lost: no further group starts.
    pub lock_lost: Arc<AtomicBool>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            force_conflicts: false,
            concurrency: 8,
            wait_timeout: Duration::from_secs(300),
            poll: Duration::from_secs(2),
            lock_lost: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What an apply did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub applied: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub not_attempted: Vec<String>,
}

impl Outcome {
    pub fn summary(&self) -> String {
        format!(
            "{} applied, {} failed, {} not attempted",
            self.applied.len(),
            self.failed.len(),
            self.not_attempted.len()
        )
    }
}

fn parent_of(p: &ParentState) -> Parent {
    Parent { name: p.name.clone(), namespace: p.namespace.clone(), id: p.id.clone() }
}

/// Applies `plan`. `progress` receives one line per group.
pub async fn execute(
    cluster: &Cluster,
    kinds: &Kinds,
    plan: &Plan,
    o: &Options,
    destroy: bool,
    progress: &(dyn Fn(&str) + Sync),
) -> Outcome {
    let mut out = Outcome::default();
    let todo: Vec<&Change> = plan.changes.iter().filter(|c| c.action != Action::Unchanged).collect();
    let parent = parent_of(&plan.parent);
    let Some(secret) = kinds.get(&("v1".to_string(), "Secret".to_string())) else {
        out.failed.push(("ApplySet parent".into(), "the cluster does not serve Secrets".into()));
        out.not_attempted = todo.iter().map(|c| c.id()).collect();
        return out;
    };
    let old: Record = (&plan.old_record).into();
    let new: Record = (&plan.new_record).into();

    if o.lock_lost.load(Ordering::SeqCst) {
        out.failed.push(("the stack's lock".into(), "lost (it could not be renewed); nothing written".into()));
        out.not_attempted = todo.iter().map(|c| c.id()).collect();
        return out;
    }
    // Widen the parent to old ∪ new before the first member write.
    let widened = old.union(&new);
    if !destroy && let Err(e) = cluster.apply(secret, &parent.object(&widened), false, true).await {
        out.failed.push((format!("Secret {}/{}", parent.namespace, parent.name), e.to_string()));
        out.not_attempted = todo.iter().map(|c| c.id()).collect();
        return out;
    }

    // Groups run one after another. An allow policy that admits less than
    // before is written widened (old ∪ new) before anything else, and
    // narrowed to its final rules only after every upsert and waypoint
    // wait, before the prune: no binding change ever meets a policy that
    // admits only one side of it.
    let narrowing: Vec<Change> = todo.iter().filter(|c| c.widen.is_some()).map(|c| (*c).clone()).collect();
    let mut groups: Vec<(Group, Vec<Change>)> = Vec::new();
    if !narrowing.is_empty() {
        let widening = narrowing
            .iter()
            .map(|c| {
                let mut w = c.clone();
                w.desired = w.widen.take();
                w
            })
            .collect();
        groups.push((Group::Widen, widening));
    }
    let mut narrow = Some(narrowing).filter(|n| !n.is_empty());
    for c in todo.iter().filter(|c| c.widen.is_none()) {
        if c.order().0 > 0
            && let Some(n) = narrow.take()
        {
            groups.push((Group::Narrow, n));
        }
        match groups.last_mut() {
            Some((Group::Order(o), members)) if *o == c.order() => members.push((*c).clone()),
            _ => groups.push((Group::Order(c.order()), vec![(*c).clone()])),
        }
    }
    if let Some(n) = narrow.take() {
        groups.push((Group::Narrow, n));
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(o.concurrency.max(1)));
    let mut stopped = false;
    for (kind, group) in groups {
        if !stopped && o.lock_lost.load(Ordering::SeqCst) {
            out.failed.push((
                "the stack's lock".into(),
                "lost (it could not be renewed); stopped before the next group".into(),
            ));
            stopped = true;
        }
        if stopped {
            out.not_attempted.extend(group.iter().map(|c| match kind {
                Group::Narrow => format!("{} (widened, not narrowed yet)", c.id()),
                Group::Widen | Group::Order(_) => c.id(),
            }));
            continue;
        }
        let title = match (kind, group.first().map(|c| c.wave)) {
            (Group::Widen, _) => "widen the allow policies that narrow".to_string(),
            (Group::Narrow, _) => "narrow them".to_string(),
            (Group::Order((0, _)), Some(w)) => format!("wave {w}"),
            (Group::Order((1, _)), Some(w)) => format!("prune, wave {w}"),
            _ => "after prune".to_string(),
        };
        let mut tasks = tokio::task::JoinSet::new();
        for c in &group {
            // A widened write is not the object's final state: it counts
            // as applied once narrowed.
            let counts = kind != Group::Widen;
            let c = c.clone();
            let (cluster, limit, force) = (cluster.clone(), limit.clone(), o.force_conflicts);
            let applyset_id = plan.parent.id.clone();
            let r = kinds.get(&(c.api_version.clone(), c.kind.clone())).cloned();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let Some(r) = r else { return (c.id(), counts, Err(format!("the cluster does not serve {}", c.kind))) };
                let result = match (&c.action, &c.desired) {
                    (Action::Delete, _) => delete(&cluster, &r, &c, &applyset_id).await,
                    (_, Some(body)) => {
                        cluster.apply(&r, body, false, force).await.map(|_| ()).map_err(|e| describe(&e))
                    }
                    (_, None) => Ok(()),
                };
                (c.id(), counts, result)
            });
        }
        let mut failed_here = 0;
        let mut applied_here = 0;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((id, counts, Ok(()))) => {
                    applied_here += 1;
                    if counts {
                        out.applied.push(id);
                    }
                }
                Ok((id, _, Err(e))) => {
                    failed_here += 1;
                    out.failed.push((id, e));
                }
                Err(e) => {
                    failed_here += 1;
                    out.failed.push(("a write".into(), format!("internal error: {e}")));
                }
            }
        }
        progress(&format!(
            "{title}: {applied_here} applied{}",
            if failed_here > 0 { format!(", {failed_here} failed") } else { String::new() }
        ));
        if failed_here > 0 {
            stopped = true;
            continue;
        }
        // Make-before-break: a waypoint is ready before its policy and
        // binding; a binding is in effect before the L4 policy narrows.
        for c in &group {
            if let Err(e) = wait_for(cluster, kinds, c, o, progress).await {
                out.failed.push((c.id(), e));
                stopped = true;
            }
        }
    }
    out.applied.sort();
    out.not_attempted.sort();
    if stopped {
        return out;
    }
    // Narrow the parent only after a fully successful run; destroy removes it.
    let result = if destroy {
        finish_destroy(cluster, kinds, plan, &parent).await
    } else {
        cluster.apply(secret, &parent.object(&new), false, true).await.map(|_| ()).map_err(|e| describe(&e))
    };
    if let Err(e) = result {
        out.failed.push((format!("Secret {}/{}", parent.namespace, parent.name), e));
    }
    out
}

/// One group of writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    /// Policies that will narrow, written admitting old and new.
    Widen,
    /// The changes of one place in the plan's order.
    Order((u8, u8)),
    /// The widened policies, narrowed to their final rules.
    Narrow,
}

/// A planned DELETE, guarded by the uid and resourceVersion the plan read.
/// Controllers write status all the time, so a 409 is re-read: the object
/// is deleted only while it is still this ApplySet's member, the same
/// object (uid) and unchanged in content since the plan.
async fn delete(cluster: &Cluster, r: &super::client::Resource, c: &Change, applyset_id: &str) -> Result<(), String> {
    let mut resource_version = c.resource_version.clone();
    for _ in 0..5 {
        match cluster
            .delete(r, c.namespace.as_deref(), &c.name, c.uid.as_deref(), resource_version.as_deref(), false)
            .await
        {
            Ok(Deleted::Deleted | Deleted::Gone) => return Ok(()),
            Err(e) if e.code() == Some(409) => {
                let Some(live) = cluster.get(r, c.namespace.as_deref(), &c.name).await.map_err(|e| describe(&e))?
                else {
                    return Ok(());
                };
                if meta_str(&live, "uid") != c.uid.as_deref() {
                    return Err("it was replaced since the plan (another uid); not deleted".into());
                }
                if at(&live, &["metadata", "labels", PART_OF_LABEL]).as_str() != Some(applyset_id) {
                    return Err("it is no longer a member of this ApplySet; not deleted".into());
                }
                if c.live_digest.as_deref() != Some(super::diff::content_digest(&live).as_str()) {
                    return Err("it was changed since the plan; not deleted (run plan again)".into());
                }
                resource_version = meta_str(&live, "resourceVersion").map(str::to_string);
            }
            Err(e) => return Err(describe(&e)),
        }
    }
    Err("it keeps changing (resourceVersion); not deleted".into())
}

/// Destroy's end: the parent goes only once a re-LIST shows no members.
async fn finish_destroy(cluster: &Cluster, kinds: &Kinds, plan: &Plan, parent: &Parent) -> Result<(), String> {
    let selector = format!("{PART_OF_LABEL}={}", parent.id);
    for gk in &plan.old_record.group_kinds {
        for ((v, k), r) in kinds {
            let group = v.rsplit_once('/').map_or("", |(g, _)| g);
            let spelled = if group.is_empty() { k.clone() } else { format!("{k}.{group}") };
            if &spelled != gk {
                continue;
            }
            let namespaces: Vec<Option<&str>> = if r.namespaced {
                plan.old_record.namespaces.iter().map(|n| Some(n.as_str())).collect()
            } else {
                vec![None]
            };
            for ns in namespaces {
                let left = cluster.list(r, ns, &selector).await.map_err(|e| describe(&e))?;
                if let Some(l) = left.first() {
                    return Err(format!(
                        "{k} {} is still a member; the parent is kept",
                        meta_str(l, "name").unwrap_or_default()
                    ));
                }
            }
        }
    }
    let Some(secret) = kinds.get(&("v1".to_string(), "Secret".to_string())) else { return Ok(()) };
    if plan.parent.resource_version.is_some() {
        cluster
            .delete(secret, Some(&parent.namespace), &parent.name, None, None, false)
            .await
            .map_err(|e| describe(&e))?;
    }
    Ok(())
}

fn describe(e: &Error) -> String {
    match e.conflicts() {
        Some(causes) => {
            let fields: Vec<String> = causes.iter().map(|(_, f, m)| format!("{f} ({m})")).collect();
            format!("conflicts with other field managers: {}; --force-conflicts takes the fields", fields.join(", "))
        }
        None => e.to_string(),
    }
}

fn condition<'a>(obj: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    at(obj, &["status", "conditions"]).as_array()?.iter().find(|c| at(c, &["type"]).as_str() == Some(kind))
}

/// Waits for what must hold before the next group: a waypoint Gateway
/// Programmed at its generation with its Deployment Available; a Service's
/// waypoint binding confirmed by `istio.io/WaypointBound`, or gone.
async fn wait_for(
    cluster: &Cluster,
    kinds: &Kinds,
    c: &Change,
    o: &Options,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), String> {
    let Some(body) = &c.desired else { return Ok(()) };
    let waypoint = c.kind == "Gateway" && at(body, &["spec", "gatewayClassName"]).as_str() == Some("istio-waypoint");
    let binding = c.kind == "Service" && c.labels_only;
    if !waypoint && !binding {
        return Ok(());
    }
    let Some(r) = kinds.get(&(c.api_version.clone(), c.kind.clone())) else { return Ok(()) };
    let deployments = kinds.get(&("apps/v1".to_string(), "Deployment".to_string()));
    let bound_wanted = at(body, &["metadata", "labels", "istio.io/use-waypoint"]).as_str().is_some();
    let start = Instant::now();
    let mut said = false;
    // Poll soon (a controller is often done in well under a second), then
    // back off to `o.poll`.
    let mut pause = Duration::from_millis(100).min(o.poll);
    loop {
        let live = cluster.get(r, c.namespace.as_deref(), &c.name).await.map_err(|e| describe(&e))?;
        let ready = match &live {
            None => false,
            Some(l) if waypoint => {
                let generation = at(l, &["metadata", "generation"]).as_i64();
                let programmed = condition(l, "Programmed");
                if let Some(p) = programmed
                    && at(p, &["status"]).as_str() == Some("False")
                    && at(p, &["observedGeneration"]).as_i64() == generation
                {
                    let reason = at(p, &["reason"]).as_str().unwrap_or("");
                    if matches!(reason, "Invalid" | "NoResources" | "AddressNotAssigned") {
                        return Err(format!(
                            "waypoint is not Programmed ({reason}): {}",
                            at(p, &["message"]).as_str().unwrap_or("")
                        ));
                    }
                }
                let programmed = programmed.is_some_and(|p| {
                    at(p, &["status"]).as_str() == Some("True") && at(p, &["observedGeneration"]).as_i64() == generation
                });
                let available = match deployments {
                    None => true,
                    Some(d) => match cluster.get(d, c.namespace.as_deref(), &c.name).await.map_err(|e| describe(&e))? {
                        None => false,
                        Some(dep) => {
                            let generation = at(&dep, &["metadata", "generation"]).as_i64();
                            let observed = at(&dep, &["status", "observedGeneration"]).as_i64();
                            observed == generation
                                && condition(&dep, "Available")
                                    .is_some_and(|a| at(a, &["status"]).as_str() == Some("True"))
                        }
                    },
                };
                programmed && available
            }
            Some(l) => {
                let bound =
                    condition(l, "istio.io/WaypointBound").is_some_and(|b| at(b, &["status"]).as_str() == Some("True"));
                bound == bound_wanted
            }
        };
        if ready {
            return Ok(());
        }
        if start.elapsed() >= o.wait_timeout {
            return Err(if waypoint {
                format!(
                    "waypoint not ready after {}s (Programmed and its Deployment Available)",
                    o.wait_timeout.as_secs()
                )
            } else {
                format!("Service binding not confirmed (istio.io/WaypointBound) after {}s", o.wait_timeout.as_secs())
            });
        }
        if !said {
            progress(&format!(
                "  waiting for {} to be {}",
                c.id(),
                if waypoint {
                    "ready"
                } else if bound_wanted {
                    "bound to its waypoint"
                } else {
                    "unbound"
                }
            ));
            said = true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(o.poll);
    }
}
