//! Ownership by the ApplySet convention, exactly as kubectl implements it.
//!
//! The parent is a Secret `ztp-<stack>`; its `applyset.kubernetes.io/id`
//! label is derived from its name and namespace, and every object ztp owns
//! carries `applyset.kubernetes.io/part-of: <id>`. The parent's annotations
//! record which group-kinds and namespaces hold members, so a later run
//! knows where to LIST for objects to prune. Objects ztp only labels
//! (Namespaces, Services) never carry `part-of`: an ApplySet prune by any
//! tool would delete them. This module is pure: it computes names, labels,
//! annotations and digests; `client` and `apply` do the I/O.

use super::at;
use crate::manifest::{Manifest, Ownership};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

pub const ID_LABEL: &str = "applyset.kubernetes.io/id";
pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
pub const TOOLING: &str = "applyset.kubernetes.io/tooling";
pub const GROUP_KINDS: &str = "applyset.kubernetes.io/contains-group-kinds";
pub const NAMESPACES: &str = "applyset.kubernetes.io/additional-namespaces";
/// ztp's own annotation on the parent: the objects it only labels, so a
/// later run can take its labels off those it no longer emits.
pub const LABELLED: &str = "ztp.dev/labelled-objects";
/// The digest of the object as ztp last applied it (catches fields that
/// were removed from the desired object, which a subset test cannot see).
pub const APPLIED_HASH: &str = "ztp.dev/applied-hash";

/// `ztp/v<version>`: the tooling annotation ztp writes and accepts.
pub fn tooling() -> String {
    format!("ztp/v{}", env!("CARGO_PKG_VERSION"))
}

/// The ApplySet id of a Secret parent: `applyset-` + unpadded base64url of
/// sha256(`<name>.<namespace>.Secret.`) + `-v1` (the core group is empty,
/// hence the trailing dot).
pub fn id(name: &str, namespace: &str) -> String {
    let digest = Sha256::digest(format!("{name}.{namespace}.Secret.").as_bytes());
    format!("applyset-{}-v1", base64url(&digest))
}

/// Unpadded base64url (RFC 4648 §5).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let sym = |i: u32| char::from(ALPHABET.get((i & 63) as usize).copied().unwrap_or(b'A'));
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        if chunk.len() > 1 {
            out.push(sym(n >> 6));
        }
        if chunk.len() > 2 {
            out.push(sym(n));
        }
    }
    out
}

/// Lower-case hex sha256 of a value's canonical JSON (maps are sorted).
pub fn digest(v: &Value) -> String {
    let text = serde_json::to_string(v).unwrap_or_default();
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The parent Secret of a stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    pub name: String,
    pub namespace: String,
    pub id: String,
}

impl Parent {
    pub fn new(stack: &str, namespace: &str) -> Parent {
        let name = format!("ztp-{stack}");
        let id = id(&name, namespace);
        Parent { name, namespace: namespace.to_string(), id }
    }

    /// `secret/ztp-<stack>` as kubectl's `--applyset` spells it.
    pub fn kubectl_ref(&self) -> String {
        format!("secret/{}", self.name)
    }

    /// Refuses a live parent that is not ztp's or not this ApplySet's.
    pub fn check_live(&self, live: &Value) -> Result<(), String> {
        let found_tooling = at(live, &["metadata", "annotations", TOOLING]).as_str();
        let found_id = at(live, &["metadata", "labels", ID_LABEL]).as_str();
        let what = format!("Secret {}/{}", self.namespace, self.name);
        match found_tooling {
            None => {
                return Err(format!(
                    "{what} exists but has no `{TOOLING}` annotation: it is not ztp's ApplySet parent"
                ));
            }
            Some(t) if !t.starts_with("ztp/") => {
                return Err(format!("{what} is the ApplySet parent of another tool (`{TOOLING}: {t}`)"));
            }
            Some(_) => {}
        }
        match found_id {
            Some(i) if i == self.id => Ok(()),
            Some(i) => Err(format!("{what} has `{ID_LABEL}: {i}`, not `{}`: it is not this stack's parent", self.id)),
            None => Err(format!("{what} has no `{ID_LABEL}` label: it is not an ApplySet parent")),
        }
    }

    /// The parent as it is applied, recording the given member sets.
    pub fn object(&self, record: &Record) -> Value {
        let comma = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        let namespaces: BTreeSet<String> =
            record.namespaces.iter().filter(|n| **n != self.namespace).cloned().collect();
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": { ID_LABEL: self.id, "app.kubernetes.io/managed-by": "ztp" },
                "annotations": {
                    TOOLING: tooling(),
                    GROUP_KINDS: comma(&record.group_kinds),
                    NAMESPACES: comma(&namespaces),
                    LABELLED: comma(&record.labelled),
                },
            },
            "type": "Opaque",
        })
    }
}

/// What a parent records: the group-kinds and namespaces that hold
/// members, and the objects ztp labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub group_kinds: BTreeSet<String>,
    pub namespaces: BTreeSet<String>,
    /// `Kind/namespace/name` (or `Kind/name`) of labelled-only objects.
    pub labelled: BTreeSet<String>,
}

impl Record {
    /// What a live parent records (empty when there is none).
    pub fn of_live(parent: Option<&Value>, own_namespace: &str) -> Record {
        let Some(p) = parent else { return Record::default() };
        let ann = at(p, &["metadata", "annotations"]);
        let set = |key: &str| -> BTreeSet<String> {
            at(ann, &[key])
                .as_str()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        let mut namespaces = set(NAMESPACES);
        namespaces.insert(own_namespace.to_string());
        Record { group_kinds: set(GROUP_KINDS), namespaces, labelled: set(LABELLED) }
    }

    /// What the desired manifests need recorded.
    pub fn of_desired(ms: &[Manifest], own_namespace: &str) -> Record {
        let mut r = Record::default();
        r.namespaces.insert(own_namespace.to_string());
        for m in ms {
            match m.ownership {
                Ownership::Owned => {
                    r.group_kinds.insert(m.group_kind());
                    if let Some(ns) = &m.namespace {
                        r.namespaces.insert(ns.clone());
                    }
                }
                Ownership::LabelsOnly => {
                    r.labelled.insert(m.id());
                }
            }
        }
        r
    }

    pub fn union(&self, other: &Record) -> Record {
        Record {
            group_kinds: self.group_kinds.union(&other.group_kinds).cloned().collect(),
            namespaces: self.namespaces.union(&other.namespaces).cloned().collect(),
            labelled: self.labelled.union(&other.labelled).cloned().collect(),
        }
    }
}

/// The object ztp applies for a manifest: owned objects get the ApplySet
/// membership label and the applied-hash annotation; labelled-only objects
/// are cut down to their name and ztp's labels, so server-side apply makes
/// ztp the owner of those labels and nothing else.
pub fn desired_object(m: &Manifest, applyset_id: &str) -> Value {
    match m.ownership {
        Ownership::LabelsOnly => {
            let mut meta = Map::new();
            meta.insert("name".into(), json!(m.name));
            if let Some(ns) = &m.namespace {
                meta.insert("namespace".into(), json!(ns));
            }
            if !m.labels.is_empty() {
                meta.insert("labels".into(), json!(m.labels));
            }
            json!({ "apiVersion": m.api_version, "kind": m.kind, "metadata": meta })
        }
        Ownership::Owned => {
            let mut v = m.to_value();
            if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert(PART_OF_LABEL.into(), json!(applyset_id));
                }
            }
            let hash = digest(&v);
            if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                let ann = meta.entry("annotations").or_insert_with(|| json!({}));
                if let Some(a) = ann.as_object_mut() {
                    a.insert(APPLIED_HASH.into(), json!(hash));
                }
            }
            v
        }
    }
}

/// The body that takes ztp's labels off an object it no longer labels: its
/// name alone, so server-side apply drops every field ztp owned.
pub fn unlabel_object(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Value {
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    if let Some(ns) = namespace {
        meta.insert("namespace".into(), json!(ns));
    }
    json!({ "apiVersion": api_version, "kind": kind, "metadata": meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_matches_kubectls_test_vector() {
        assert_eq!(id("my-set", "test"), "applyset-0eFHV8ySqp7XoShsGvyWFQD3s96yqwHmzc4e0HR1dsY-v1");
    }

    #[test]
    fn base64url_is_unpadded_rfc4648() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn parent_records_sorted_sets_without_its_own_namespace() {
        let p = Parent::new("shop", "istio-system");
        let r = Record {
            group_kinds: ["NetworkPolicy.networking.k8s.io", "AuthorizationPolicy.security.istio.io"]
                .map(String::from)
                .into(),
            namespaces: ["istio-system", "web", "db"].map(String::from).into(),
            labelled: BTreeSet::new(),
        };
        let o = p.object(&r);
        let ann = &o["metadata"]["annotations"];
        assert_eq!(ann[GROUP_KINDS], "AuthorizationPolicy.security.istio.io,NetworkPolicy.networking.k8s.io");
        assert_eq!(ann[NAMESPACES], "db,web");
        assert_eq!(ann[LABELLED], "");
        assert_eq!(o["metadata"]["labels"][ID_LABEL], p.id.as_str());
        assert!(ann[TOOLING].as_str().unwrap().starts_with("ztp/v"));
        assert_eq!(Record::of_live(Some(&o), "istio-system"), r);
    }

    #[test]
    fn foreign_or_mismatched_parents_are_refused() {
        let p = Parent::new("shop", "istio-system");
        let ok = p.object(&Record::default());
        assert_eq!(p.check_live(&ok), Ok(()));
        let mut kubectl = ok.clone();
        kubectl["metadata"]["annotations"][TOOLING] = json!("kubectl/v1.31");
        assert!(
            p.check_live(&kubectl)
                .unwrap_err()
                .contains("another tool (`applyset.kubernetes.io/tooling: kubectl/v1.31`)")
        );
        let mut none = ok.clone();
        none["metadata"]["annotations"] = json!({});
        assert!(p.check_live(&none).unwrap_err().contains("no `applyset.kubernetes.io/tooling`"));
        let mut other = ok;
        other["metadata"]["labels"][ID_LABEL] = json!("applyset-x-v1");
        assert!(p.check_live(&other).unwrap_err().contains("applyset-x-v1"));
    }
}
