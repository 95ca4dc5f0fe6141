//! The stack's lock: a `coordination.k8s.io/v1` Lease `ztp-<stack>-lock`
//! next to the ApplySet parent, so two applies (or an apply and a destroy)
//! never write one stack at once.
//!
//! The Lease is taken by a create (409 AlreadyExists means someone holds
//! it) or, when its holder let it expire or released it, by an update that
//! carries the observed resourceVersion; never by server-side apply, which
//! would merge two holders instead of refusing one. Expiry is judged the way
//! client-go's leader election does: from the moment *this* process saw the
//! holder's record last change, plus the holder's `leaseDurationSeconds`,
//! so clock skew between machines does not matter. While held, a task
//! renews the Lease every third of its duration; when renewing fails past
//! the renew deadline the lock counts as lost and apply stops before its
//! next wave. Releasing deletes the Lease with uid and resourceVersion
//! preconditions. `force-unlock` deletes it for a holder that is gone.

use super::client::{Cluster, Error, Resource};
use super::{at, meta_str};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Lease's `leaseDurationSeconds` for ztp's own holds.
pub const LEASE_SECONDS: u64 = 60;

const OPERATION: &str = "ztp.dev/lock-operation";
const VERSION: &str = "ztp.dev/lock-version";
const CREATED: &str = "ztp.dev/lock-created";

/// The Lease name of a stack.
pub fn lease_name(stack: &str) -> String {
    format!("ztp-{stack}-lock")
}

/// Who holds (or held) a lock, as the `Lock Info` block shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    pub namespace: String,
    pub name: String,
    /// `holderIdentity`: `user@host:pid:uuid`; empty when released.
    pub id: String,
    pub operation: String,
    pub version: String,
    pub created: String,
    pub renewed: String,
    pub duration_seconds: u64,
}

impl LockInfo {
    fn of(lease: &Value) -> LockInfo {
        let ann = |k: &str| at(lease, &["metadata", "annotations", k]).as_str().unwrap_or("").to_string();
        LockInfo {
            namespace: meta_str(lease, "namespace").unwrap_or_default().to_string(),
            name: meta_str(lease, "name").unwrap_or_default().to_string(),
            id: at(lease, &["spec", "holderIdentity"]).as_str().unwrap_or("").to_string(),
            operation: ann(OPERATION),
            version: ann(VERSION),
            created: ann(CREATED),
            renewed: at(lease, &["spec", "renewTime"]).as_str().unwrap_or("").to_string(),
            duration_seconds: at(lease, &["spec", "leaseDurationSeconds"]).as_u64().unwrap_or(LEASE_SECONDS),
        }
    }

    /// The `user@host` part of the holder id.
    pub fn who(&self) -> &str {
        self.id.split(':').next().unwrap_or("")
    }

    /// Terraform's `Lock Info:` block.
    pub fn block(&self) -> String {
        let or_unknown = |s: &str| if s.is_empty() { "(unknown)".to_string() } else { s.to_string() };
        format!(
            "Lock Info:\n  ID:        {}\n  Lease:     {}/{}\n  Operation: {}\n  Who:       {}\n  Version:   {}\n  Created:   {}\n  Renewed:   {} (expires {}s after its last renewal)\n",
            or_unknown(&self.id),
            self.namespace,
            self.name,
            or_unknown(&self.operation),
            or_unknown(self.who()),
            or_unknown(&self.version),
            or_unknown(&self.created),
            or_unknown(&self.renewed),
            self.duration_seconds,
        )
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}", locked_message(.0, .1))]
    Locked(Box<LockInfo>, Duration),
    #[error("cannot take the lock {0}: {1}")]
    Api(String, Error),
}

fn locked_message(info: &LockInfo, waited: &Duration) -> String {
    let waited = if waited.is_zero() { String::new() } else { format!(" (waited {}s)", waited.as_secs()) };
    format!(
        "the stack is locked by another ztp{waited}\n\n{}\nztp takes this lock so that two applies never write one stack at once. Wait for it with\n--lock-timeout DURATION (a holder that stopped loses the lock {}s after its last renewal),\nor, if no ztp holds it any more, remove it with `ztp force-unlock {}`.",
        info.block(),
        info.duration_seconds,
        info.id
    )
}

/// How to take the lock.
#[derive(Clone, Debug)]
pub struct LockOptions {
    /// How long to wait for a held lock (0: fail at once).
    pub timeout: Duration,
    /// `leaseDurationSeconds` of our hold.
    pub duration: Duration,
    /// How often a held lock is re-read while waiting.
    pub poll: Duration,
}

impl Default for LockOptions {
    fn default() -> LockOptions {
        LockOptions {
            timeout: Duration::ZERO,
            duration: Duration::from_secs(LEASE_SECONDS),
            poll: Duration::from_secs(1),
        }
    }
}

/// This process's holder identity: `user@host:pid:uuid`.
pub fn holder_identity() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into());
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{host}:{}:{}", std::process::id(), uuid4())
}

/// A random version-4 UUID from the standard library's randomly keyed hasher.
fn uuid4() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        h.finish()
    };
    let (a, b) = (half(1), half(2));
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

fn now_micro() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A held lock; [`Lock::release`] gives it back. If the process dies
/// instead, the Lease expires after its duration.
pub struct Lock {
    cluster: Cluster,
    lease: Resource,
    namespace: String,
    name: String,
    holder: String,
    /// The Lease as last written by us.
    last: Arc<Mutex<Value>>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

/// The Lease body for `holder`; `live` (for an update) supplies the uid
/// and resourceVersion that guard it.
fn lease_body(
    namespace: &str,
    name: &str,
    live: Option<&Value>,
    holder: &str,
    operation: &str,
    duration: Duration,
    transitions: i64,
) -> Value {
    let now = now_micro();
    let mut metadata = json!({
        "name": name,
        "namespace": namespace,
        "annotations": {OPERATION: operation, VERSION: env!("CARGO_PKG_VERSION"), CREATED: now_rfc3339()},
    });
    if let (Some(live), Some(m)) = (live, metadata.as_object_mut()) {
        for field in ["uid", "resourceVersion"] {
            if let Some(v) = meta_str(live, field) {
                m.insert(field.into(), json!(v));
            }
        }
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration.as_secs().max(1),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": transitions,
        },
    })
}

/// `last` with a new renewTime, ready for a resourceVersion-guarded update.
fn renewed_body(last: &Value) -> Value {
    let mut body = last.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(spec) = body.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("renewTime".into(), json!(now_micro()));
    }
    body
}

/// What was seen of a held Lease and when, for client-go-style expiry.
struct Observed {
    record: (String, String, String),
    since: Instant,
}

impl Lock {
    /// Takes the lock of `stack`, waiting up to `o.timeout` for a holder.
    pub async fn acquire(
        cluster: &Cluster,
        lease: &Resource,
        namespace: &str,
        stack: &str,
        operation: &str,
        o: &LockOptions,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Lock, LockError> {
        let name = lease_name(stack);
        let holder = holder_identity();
        let fail = |e: Error| {
            let e = if e.is_not_found() {
                Error::Config(format!("the namespace {namespace} of the ApplySet parent does not exist"))
            } else {
                e
            };
            LockError::Api(format!("{namespace}/{name}"), e)
        };
        let start = Instant::now();
        let mut observed: Option<Observed> = None;
        let mut said = false;
        loop {
            let fresh = lease_body(namespace, &name, None, &holder, operation, o.duration, 0);
            let taken = match cluster.create(lease, &fresh).await {
                Ok(written) => Some(written),
                Err(e) if e.code() == Some(409) => {
                    match cluster.get(lease, Some(namespace), &name).await.map_err(fail)? {
                        // Deleted between the create and the read: try again.
                        None => continue,
                        Some(live) => {
                            let info = LockInfo::of(&live);
                            let record = (
                                info.id.clone(),
                                info.renewed.clone(),
                                meta_str(&live, "resourceVersion").unwrap_or_default().to_string(),
                            );
                            // A retried create whose first attempt landed.
                            if info.id == holder {
                                Some(live)
                            } else {
                                let now = Instant::now();
                                let since = match &observed {
                                    Some(ob) if ob.record == record => ob.since,
                                    _ => now,
                                };
                                observed = Some(Observed { record, since });
                                let expired = info.id.is_empty()
                                    || now.duration_since(since) > Duration::from_secs(info.duration_seconds);
                                if expired {
                                    let transitions =
                                        at(&live, &["spec", "leaseTransitions"]).as_i64().unwrap_or(0) + 1;
                                    let body = lease_body(
                                        namespace,
                                        &name,
                                        Some(&live),
                                        &holder,
                                        operation,
                                        o.duration,
                                        transitions,
                                    );
                                    match cluster.replace(lease, &body).await {
                                        Ok(written) => Some(written),
                                        // Someone else took or renewed it first.
                                        Err(e) if e.code() == Some(409) || e.is_not_found() => None,
                                        Err(e) => return Err(fail(e)),
                                    }
                                } else {
                                    if start.elapsed() >= o.timeout {
                                        return Err(LockError::Locked(Box::new(info), start.elapsed()));
                                    }
                                    if !said {
                                        progress(&format!(
                                            "Waiting for the lock {namespace}/{name}, held by {} ({})…",
                                            info.who(),
                                            if info.operation.is_empty() {
                                                "unknown operation"
                                            } else {
                                                &info.operation
                                            }
                                        ));
                                        said = true;
                                    }
                                    None
                                }
                            }
                        }
                    }
                }
                Err(e) => return Err(fail(e)),
            };
            if let Some(written) = taken {
                let last = Arc::new(Mutex::new(written));
                let lost = Arc::new(AtomicBool::new(false));
                let renewer = tokio::spawn(renew(
                    cluster.clone(),
                    lease.clone(),
                    last.clone(),
                    lost.clone(),
                    holder.clone(),
                    o.duration,
                ));
                return Ok(Lock {
                    cluster: cluster.clone(),
                    lease: lease.clone(),
                    namespace: namespace.to_string(),
                    name,
                    holder,
                    last,
                    lost,
                    renewer,
                });
            }
            let left = o.timeout.saturating_sub(start.elapsed());
            tokio::time::sleep(o.poll.min(left.max(Duration::from_millis(10)))).await;
        }
    }

    /// Set once the lock is lost; apply checks it before every wave.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Stops renewing and deletes the Lease, if it is still ours.
    pub async fn release(self) -> Result<(), String> {
        self.renewer.abort();
        let _ = self.renewer.await;
        let last = self.last.lock().map(|l| l.clone()).unwrap_or(Value::Null);
        let what = format!("{}/{}", self.namespace, self.name);
        let mut uid = meta_str(&last, "uid").map(str::to_string);
        let mut rv = meta_str(&last, "resourceVersion").map(str::to_string);
        for _ in 0..3 {
            match self
                .cluster
                .delete(&self.lease, Some(&self.namespace), &self.name, uid.as_deref(), rv.as_deref(), false)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == Some(409) => {
                    // Written since our last renewal: release only if still ours.
                    match self.cluster.get(&self.lease, Some(&self.namespace), &self.name).await {
                        Ok(None) => return Ok(()),
                        Ok(Some(live)) if LockInfo::of(&live).id == self.holder => {
                            uid = meta_str(&live, "uid").map(str::to_string);
                            rv = meta_str(&live, "resourceVersion").map(str::to_string);
                        }
                        Ok(Some(live)) => {
                            return Err(format!(
                                "the lock {what} is now held by {}; left it alone",
                                LockInfo::of(&live).id
                            ));
                        }
                        Err(e) => return Err(format!("cannot release the lock {what}: {e}")),
                    }
                }
                Err(e) => return Err(format!("cannot release the lock {what}: {e}")),
            }
        }
        Err(format!("cannot release the lock {what}: it keeps changing"))
    }
}

/// Renews every third of the duration; on a holder change, or when no
/// renewal succeeded within two thirds of the duration (client-go's renew
/// deadline), marks the lock lost and stops.
async fn renew(
    cluster: Cluster,
    lease: Resource,
    last: Arc<Mutex<Value>>,
    lost: Arc<AtomicBool>,
    holder: String,
    duration: Duration,
) {
    let every = duration / 3;
    let deadline = duration * 2 / 3;
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(if renewed.elapsed() < every { every } else { Duration::from_millis(500) }).await;
        let current = match last.lock() {
            Ok(l) => l.clone(),
            Err(_) => break,
        };
        let body = renewed_body(&current);
        match cluster.replace(&lease, &body).await {
            Ok(written) => {
                if let Ok(mut l) = last.lock() {
                    *l = written;
                }
                renewed = Instant::now();
                continue;
            }
            Err(e) if e.code() == Some(409) || e.is_not_found() => {
                // Someone wrote the Lease: it is ours only if the holder is still us.
                let namespace = meta_str(&current, "namespace").unwrap_or_default().to_string();
                let name = meta_str(&current, "name").unwrap_or_default().to_string();
                match cluster.get(&lease, Some(&namespace), &name).await {
                    Ok(Some(live)) if LockInfo::of(&live).id == holder => {
                        if let Ok(mut l) = last.lock() {
                            *l = live;
                        }
                        continue;
                    }
                    Ok(_) => {
                        lost.store(true, Ordering::SeqCst);
                        break;
                    }
                    Err(_) => {}
                }
            }
            Err(_) => {}
        }
        if renewed.elapsed() >= deadline {
            lost.store(true, Ordering::SeqCst);
            break;
        }
    }
}

/// `ztp force-unlock ID`: the Lease as it is now, to show before asking.
pub async fn inspect(
    cluster: &Cluster,
    lease: &Resource,
    namespace: &str,
    stack: &str,
) -> Result<Option<LockInfo>, Error> {
    Ok(cluster.get(lease, Some(namespace), &lease_name(stack)).await?.map(|l| LockInfo::of(&l)))
}

/// Deletes the Lease of `stack` if its holder is `id`, guarded by the uid
/// and resourceVersion just read.
pub async fn force_unlock(
    cluster: &Cluster,
    lease: &Resource,
    namespace: &str,
    stack: &str,
    id: &str,
) -> Result<(), String> {
    let name = lease_name(stack);
    let live = cluster
        .get(lease, Some(namespace), &name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the stack is not locked (no Lease {namespace}/{name})"))?;
    let info = LockInfo::of(&live);
    if info.id != id {
        return Err(format!(
            "the lock is held by `{}`, not `{id}`; nothing changed\n\n{}",
            if info.id.is_empty() { "nobody" } else { &info.id },
            info.block()
        ));
    }
    cluster
        .delete(lease, Some(namespace), &name, meta_str(&live, "uid"), meta_str(&live, "resourceVersion"), false)
        .await
        .map(|_| ())
        .map_err(|e| {
            if e.code() == Some(409) {
                format!("the lock {namespace}/{name} changed while unlocking (renewed by its holder?); nothing changed")
            } else {
                e.to_string()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_identity_is_user_host_pid_uuid_and_unique() {
        let (a, b) = (holder_identity(), holder_identity());
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split(':').collect();
        assert_eq!(parts.len(), 3, "{a}");
        assert!(parts[0].contains('@'), "{a}");
        assert_eq!(parts[1], std::process::id().to_string());
        let uuid = parts[2];
        assert_eq!(uuid.len(), 36, "{uuid}");
        assert_eq!(&uuid[14..15], "4", "{uuid}");
    }

    #[test]
    fn lock_info_reads_the_lease() {
        let lease = json!({
            "metadata": {"name": "ztp-demo-lock", "namespace": "istio-system", "annotations": {
                OPERATION: "apply", VERSION: "0.1.0", CREATED: "2026-12-06T12:00:00Z"}},
            "spec": {"holderIdentity": "alice@laptop:42:0000", "leaseDurationSeconds": 60, "renewTime": "2026-12-06T12:00:20.000000Z"}
        });
        let info = LockInfo::of(&lease);
        assert_eq!(info.who(), "alice@laptop");
        assert_eq!(
            info.block(),
            "Lock Info:\n  ID:        alice@laptop:42:0000\n  Lease:     istio-system/ztp-demo-lock\n  Operation: apply\n  Who:       alice@laptop\n  Version:   0.1.0\n  Created:   2026-12-06T12:00:00Z\n  Renewed:   2026-12-06T12:00:20.000000Z (expires 60s after its last renewal)\n"
        );
    }

    #[test]
    fn lease_body_is_a_fresh_hold() {
        let live = json!({"metadata": {"name": "n", "namespace": "x", "resourceVersion": "7", "uid": "u"}});
        let b = lease_body("x", "n", Some(&live), "h", "destroy", Duration::from_secs(60), 3);
        assert_eq!(b["metadata"]["uid"], "u");
        let r = renewed_body(&b);
        assert_eq!(r["spec"]["holderIdentity"], "h");
        assert_eq!(r["metadata"]["resourceVersion"], "7");
        assert_eq!(b["spec"]["holderIdentity"], "h");
        assert_eq!(b["spec"]["leaseDurationSeconds"], 60);
        assert_eq!(b["spec"]["leaseTransitions"], 3);
        assert_eq!(b["metadata"]["resourceVersion"], "7");
        assert_eq!(b["metadata"]["annotations"][OPERATION], "destroy");
    }
}
