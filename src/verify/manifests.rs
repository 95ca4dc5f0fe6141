//! Reading a directory of Kubernetes YAML that ztp did not necessarily
//! write — a team's hand-written Cilium and Istio policies, a lab's files,
//! or `ztp build`'s own output — as the model's input. Files are read in
//! path order, multi-document files split at `---`, `List` objects
//! unwrapped, and a CiliumNetworkPolicy's `specs` read as one rule each.
//! Every object keeps the file and line it came from, which explanations
//! name. Objects of kinds the model does not read are skipped and said so;
//! kinds that change traffic but are not modelled get a warning; input the
//! API server would refuse (no `kind`, no name, a Cilium rule without a
//! selector or sections) is an error with its location. This module only
//! reads: it never judges a flow.

use super::{at, list};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How bad a problem with the input is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// A problem with the input, at a file and line (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = if self.severity == Severity::Error { "error" } else { "warning" };
        write!(f, "{level}: {}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// A set of objects read from YAML.
#[derive(Debug, Default)]
pub struct ManifestSet {
    /// Every object, in file and document order.
    pub objects: Vec<Value>,
    /// `Kind ns/name` → `file:line`.
    pub sources: BTreeMap<String, String>,
    pub problems: Vec<Problem>,
    /// Objects the verifier does not need, by kind, with how many.
    pub skipped: BTreeMap<String, usize>,
    /// Remarks about the set as a whole, printed after the problems.
    pub notes: Vec<String>,
}

impl ManifestSet {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The problems and the skipped kinds, one line each, as the CLI
    /// prints them before an answer.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for p in &self.problems {
            out.push_str(&format!("{p}\n"));
        }
        if !self.skipped.is_empty() {
            let kinds: Vec<String> = self.skipped.iter().map(|(k, n)| format!("{k} ({n})")).collect();
            out.push_str(&format!("note: skipped objects that do not affect reachability: {}\n", kinds.join(", ")));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}

/// Kinds the model reads.
const READ: &[&str] = &[
    "CiliumNetworkPolicy",
    "CiliumClusterwideNetworkPolicy",
    "NetworkPolicy",
    "AuthorizationPolicy",
    "PeerAuthentication",
    "Gateway",
    "Service",
    "Namespace",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
];

/// Kinds that never change whether a connection is allowed.
const HARMLESS: &[&str] = &[
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "HTTPRoute",
    "GRPCRoute",
    "ReferenceGrant",
    "GatewayClass",
    "Kustomization",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "StorageClass",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "PriorityClass",
    "ResourceQuota",
    "LimitRange",
    "ServiceMonitor",
    "PodMonitor",
    "Telemetry",
    "CustomResourceDefinition",
];

/// Kinds that change traffic and that the model does not read.
const NOT_MODELLED: &[&str] = &[
    "ServiceEntry",
    "WorkloadEntry",
    "Sidecar",
    "VirtualService",
    "DestinationRule",
    "EnvoyFilter",
    "RequestAuthentication",
    "WasmPlugin",
    "TCPRoute",
    "TLSRoute",
    "UDPRoute",
    "Ingress",
    "CiliumCIDRGroup",
    "CiliumEnvoyConfig",
    "CiliumClusterwideEnvoyConfig",
    "CiliumEgressGatewayPolicy",
    "CiliumLocalRedirectPolicy",
    "AdminNetworkPolicy",
    "BaselineAdminNetworkPolicy",
    "ClusterNetworkPolicy",
];

/// Kinds without a namespace.
const CLUSTER_WIDE: &[&str] =
    &["CiliumClusterwideNetworkPolicy", "Namespace", "GatewayClass", "ClusterRole", "ClusterRoleBinding"];

/// The YAML and JSON files under `dir` (recursively, in path order) as
/// `(name relative to dir, text)`. A single file is read as itself.
pub fn read_dir(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut paths = Vec::new();
    if dir.is_file() {
        paths.push(dir.to_path_buf());
    } else {
        collect(dir, &mut paths, 0)?;
    }
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let name = if dir.is_file() {
            p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        } else {
            p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().replace('\\', "/")
        };
        let bytes = std::fs::read(&p)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: not valid UTF-8", p.display()))
        })?;
        out.push((name, text));
    }
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> std::io::Result<()> {
    // Symlink loops end here rather than in a stack overflow.
    if depth > 32 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect(&path, out, depth + 1)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// One document of a file: its text and the line it starts on.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let marker = line.trim_end();
        let is_separator = marker == "---" || marker.starts_with("--- #") || marker.starts_with("---\t");
        if is_separator {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 2;
            continue;
        }
        // A separator counts as a blank line, so lines keep their numbers.
        current.push_str(line);
    }
    docs.push((start, current));
    docs
}

/// The first line of a document with content (not blank, not a comment).
fn first_content_line(start: usize, doc: &str) -> usize {
    doc.lines()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map_or(start, |i| start + i)
}

/// Parses every file into one set of objects.
pub fn parse(files: &[(String, String)]) -> ManifestSet {
    let mut set = ManifestSet::default();
    let mut seen: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (file, text) in files {
        for (start, doc) in documents(text) {
            let line = first_content_line(start, &doc);
            let problem = |severity, line, column, message: String| Problem {
                severity,
                file: file.clone(),
                line,
                column,
                message,
            };
            let yaml: serde_yaml::Value = match serde_yaml::from_str(&doc) {
                Ok(v) => v,
                Err(e) => {
                    let (l, c) = e.location().map_or((line, 1), |loc| (start + loc.line() - 1, loc.column()));
                    let message = e.to_string();
                    // serde_yaml appends " at line L column C" for its own numbering.
                    let message = message.split(" at line ").next().unwrap_or(&message).to_string();
                    set.problems.push(problem(Severity::Error, l, c, format!("not valid YAML: {message}")));
                    continue;
                }
            };
            if yaml.is_null() {
                continue;
            }
            let value = match serde_json::to_value(&yaml) {
                Ok(v) => v,
                Err(e) => {
                    set.problems.push(problem(Severity::Error, line, 1, format!("not a Kubernetes object: {e}")));
                    continue;
                }
            };
            let items: Vec<Value> = if at(&value, &["kind"]).as_str() == Some("List") {
                list(at(&value, &["items"])).to_vec()
            } else {
                vec![value]
            };
            for object in items {
                let name = super::name_of(&object);
                let here = format!("{file}:{line}");
                let mut kept = false;
                for o in expand(object) {
                    match admit(o, &mut set.skipped) {
                        Ok(a) => {
                            for w in a.warnings {
                                let name = a.object.as_ref().map_or_else(|| name.clone(), super::name_of);
                                set.problems.push(problem(Severity::Warning, line, 1, format!("{name}: {w}")));
                            }
                            if let Some(o) = a.object {
                                set.objects.push(o);
                                kept = true;
                            }
                        }
                        Err(message) => set.problems.push(problem(Severity::Error, line, 1, message)),
                    }
                }
                if !kept {
                    continue;
                }
                // The name as the model spells it (namespace filled in).
                let name = set.objects.last().map_or(name, super::name_of);
                if let Some((first, index)) = seen.get(&name) {
                    if let Some(merged) = labels_only_merge(set.objects.get(*index), set.objects.last()) {
                        if let Some(slot) = set.objects.get_mut(*index) {
                            *slot = merged;
                        }
                        set.objects.pop();
                        continue;
                    }
                    set.problems.push(problem(
                        Severity::Error,
                        line,
                        1,
                        format!("{name} is defined twice (first at {first}): keep one"),
                    ));
                    continue;
                }
                seen.insert(name.clone(), (here.clone(), set.objects.len().saturating_sub(1)));
                set.sources.insert(name, here);
            }
        }
    }
    set
}

/// A Namespace or Service given twice, once without a `spec`: the way
/// ztp's output sets labels on an object its owner writes (a Service's
/// `istio.io/use-waypoint`, a Namespace's dataplane mode). The two are
/// one object, the labels and annotations of both on the one with a spec.
fn labels_only_merge(first: Option<&Value>, second: Option<&Value>) -> Option<Value> {
    let (first, second) = (first?, second?);
    let kind = at(first, &["kind"]).as_str()?;
    if kind != "Service" && kind != "Namespace" {
        return None;
    }
    let (mut base, extra) = match (at(first, &["spec"]).is_null(), at(second, &["spec"]).is_null()) {
        (_, true) => (first.clone(), second),
        (true, false) => (second.clone(), first),
        (false, false) => return None,
    };
    for key in ["labels", "annotations"] {
        let Some(add) = at(extra, &["metadata", key]).as_object() else { continue };
        let Some(meta) = base.get_mut("metadata").and_then(Value::as_object_mut) else { continue };
        let entry = meta.entry(key.to_string()).or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(m) = entry.as_object_mut() {
            for (k, v) in add {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    Some(base)
}

/// A CiliumNetworkPolicy with `specs` is one rule per entry (beside
/// `spec`, if both are given), under the same name.
fn expand(o: Value) -> Vec<Value> {
    let kind = at(&o, &["kind"]).as_str().unwrap_or("");
    let specs = list(at(&o, &["specs"])).to_vec();
    if !kind.starts_with("Cilium") || specs.is_empty() {
        return vec![o];
    }
    let mut out = Vec::new();
    let mut base = o;
    if let Some(m) = base.as_object_mut() {
        m.remove("specs");
    }
    if !at(&base, &["spec"]).is_null() {
        out.push(base.clone());
    }
    for s in specs {
        let mut one = base.clone();
        if let Some(m) = one.as_object_mut() {
            m.insert("spec".to_string(), s);
        }
        out.push(one);
    }
    out
}

/// One object as the set takes it: the object (`None`: skipped), its
/// namespace filled in as kubectl would, and what to warn about it.
struct Admitted {
    object: Option<Value>,
    warnings: Vec<String>,
}

fn skip(warning: Option<String>) -> Admitted {
    Admitted { object: None, warnings: warning.into_iter().collect() }
}

/// Checks one object.
fn admit(mut o: Value, skipped: &mut BTreeMap<String, usize>) -> Result<Admitted, String> {
    if !o.is_object() {
        return Err(
            "a document must be a Kubernetes object (a mapping with `apiVersion`, `kind` and `metadata`)".into()
        );
    }
    let Some(kind) = at(&o, &["kind"]).as_str().map(str::to_string) else {
        return Err("the object has no `kind`".into());
    };
    let api = at(&o, &["apiVersion"]).as_str().unwrap_or("").to_string();
    if api.is_empty() {
        return Err(format!("the {kind} has no `apiVersion`"));
    }
    if api.starts_with("kustomize.config.k8s.io") {
        *skipped.entry(kind).or_default() += 1;
        return Ok(skip(None));
    }
    if at(&o, &["metadata", "name"]).as_str().is_none_or(str::is_empty) {
        return Err(format!("the {kind} has no `metadata.name`"));
    }
    if kind == "Gateway" && api.starts_with("networking.istio.io") {
        return Ok(skip(Some(
            "an Istio API Gateway (networking.istio.io) is not modelled: skipped (verdicts read Gateway API Gateways)"
                .to_string(),
        )));
    }
    if HARMLESS.contains(&kind.as_str()) {
        *skipped.entry(kind).or_default() += 1;
        return Ok(skip(None));
    }
    if !READ.contains(&kind.as_str()) && !NOT_MODELLED.contains(&kind.as_str()) {
        return Ok(skip(Some(format!("unknown kind {kind} ({api}): skipped"))));
    }
    if !CLUSTER_WIDE.contains(&kind.as_str())
        && at(&o, &["metadata", "namespace"]).is_null()
        && let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("namespace".to_string(), Value::String("default".to_string()));
    }
    if NOT_MODELLED.contains(&kind.as_str()) {
        return Ok(skip(Some(format!("{kind} changes traffic but is not modelled: skipped, verdicts ignore it"))));
    }
    let warnings = match kind.as_str() {
        "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy" => cilium_rule(&o)?,
        "AuthorizationPolicy" => {
            let mut w = authorization_policy(&o);
            w.extend(super::istio::ztunnel_reading(&o));
            w
        }
        _ => Vec::new(),
    };
    Ok(Admitted { object: Some(o), warnings })
}

/// What Cilium's API server and agent say of a rule (DOMAIN.md): no
/// selector or no section key at all is refused; keys whose lists are all
/// empty are accepted, then rejected by the agent, so nothing is enforced.
fn cilium_rule(o: &Value) -> Result<Vec<String>, String> {
    let name = super::name_of(o);
    let spec = at(o, &["spec"]);
    if !spec.is_object() {
        return Err(format!("{name} has no `spec` (or `specs`)"));
    }
    if at(spec, &["endpointSelector"]).is_null() && at(spec, &["nodeSelector"]).is_null() {
        return Err(format!("{name}: the API server refuses a rule without `endpointSelector` or `nodeSelector`"));
    }
    let keys = ["ingress", "ingressDeny", "egress", "egressDeny"];
    for k in keys {
        let v = at(spec, &[k]);
        if !v.is_null() && !v.is_array() {
            return Err(format!("{name}: `{k}` must be a list of rules"));
        }
    }
    if keys.iter().all(|k| at(spec, &[k]).is_null()) {
        return Err(format!(
            "{name}: the API server refuses a rule with none of ingress, ingressDeny, egress, egressDeny"
        ));
    }
    let mut warnings = Vec::new();
    if keys.iter().all(|k| list(at(spec, &[k])).is_empty()) {
        warnings.push(
            "every section is an empty list: the agent rejects the rule (Valid=False) and enforces nothing".to_string(),
        );
    }
    for rule in list(at(spec, &["egress"])) {
        for f in list(at(rule, &["toFQDNs"])) {
            let Some(pattern) = at(f, &["matchPattern"]).as_str() else { continue };
            if !pattern.is_empty() && pattern.chars().all(|c| c == '*') {
                warnings.push(format!("toFQDNs pattern `{pattern}` matches every name"));
            } else if let Some(rest) = pattern.strip_prefix('*')
                && !rest.starts_with('.')
                && !rest.starts_with('*')
            {
                warnings.push(format!(
                    "toFQDNs pattern `{pattern}`: the star stays inside one label, so it matches `{rest}` and `evil{rest}`, not `www.{rest}`"
                ));
            }
        }
    }
    if not_in_namespace_without_exists(spec) {
        warnings.push(format!(
            "a `NotIn` on `{NAMESPACE_KEY}` without `Exists` beside it also matches endpoints with no namespace (world, host)"
        ));
    }
    Ok(warnings)
}

const NAMESPACE_KEY: &str = "k8s:io.kubernetes.pod.namespace";

/// Whether some selector under `v` has a `NotIn` on the namespace label
/// and no `Exists` on it (DOMAIN.md: such a selector matches the world).
fn not_in_namespace_without_exists(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            let exprs = m.get("matchExpressions").map(list).unwrap_or_default();
            let on_ns = |op: &str| {
                exprs.iter().any(|e| {
                    at(e, &["operator"]).as_str() == Some(op)
                        && at(e, &["key"])
                            .as_str()
                            .is_some_and(|k| k == NAMESPACE_KEY || k == "io.kubernetes.pod.namespace")
                })
            };
            (on_ns("NotIn") && !on_ns("Exists")) || m.values().any(not_in_namespace_without_exists)
        }
        Value::Array(a) => a.iter().any(not_in_namespace_without_exists),
        _ => false,
    }
}

/// AuthorizationPolicy shapes that are easy to misread.
fn authorization_policy(o: &Value) -> Vec<String> {
    let mut warnings = Vec::new();
    let spec = at(o, &["spec"]);
    let has_refs = !at(spec, &["targetRefs"]).is_null() || !at(spec, &["targetRef"]).is_null();
    if has_refs && !at(spec, &["selector"]).is_null() {
        warnings.push("`selector` with `targetRefs`: Istio rejects the policy; the model reads its targetRefs".into());
    }
    if at(spec, &["action"]).as_str() == Some("CUSTOM") {
        warnings.push(
            "CUSTOM (an external authorizer) is not sent to ztunnel and not modelled at waypoints: it decides nothing here"
                .into(),
        );
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, text: &str) -> ManifestSet {
        parse(&[(name.to_string(), text.to_string())])
    }

    #[test]
    fn documents_keep_their_lines_and_kinds_are_sorted_out() {
        let set = one(
            "a.yaml",
            "# header\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: demo\n---\napiVersion: x/v1\nkind: Widget\nmetadata: {name: w}\n",
        );
        assert_eq!(set.sources.get("Service demo/s").map(String::as_str), Some("a.yaml:7"));
        assert_eq!(set.skipped.get("ConfigMap"), Some(&1));
        assert_eq!(set.problems.len(), 1);
        assert!(
            set.problems[0].to_string().starts_with("warning: a.yaml:13:1: Widget w: unknown kind"),
            "{:?}",
            set.problems
        );
    }

    #[test]
    fn bad_yaml_and_refused_rules_are_errors_with_a_line() {
        let set = one("b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\nkind: [\n");
        assert!(set.has_errors());
        assert_eq!(set.problems[0].line, 6);
        let set = one(
            "c.yaml",
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: a}\nspec:\n  endpointSelector: {}\n",
        );
        assert!(set.problems[0].message.contains("refuses a rule with none of"));
        let set = one(
            "d.yaml",
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: a}\nspec:\n  endpointSelector: {}\n  ingress: []\n",
        );
        assert!(!set.has_errors());
        assert!(set.problems[0].message.contains("Valid=False"));
    }

    #[test]
    fn lists_and_specs_are_unwrapped() {
        let set = one(
            "e.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: cilium.io/v2\n  kind: CiliumNetworkPolicy\n  metadata: {name: p, namespace: a}\n  specs:\n  - {endpointSelector: {}, ingress: [{}]}\n  - {endpointSelector: {}, egress: [{}]}\n",
        );
        assert_eq!(set.objects.len(), 2);
    }
}
