//! `ztp doctor`: the installation preconditions a cluster must meet for
//! ztp's policies to mean what they say (DOMAIN.md, "Installation
//! preconditions"), read from what the cluster shows: Cilium's agent
//! configuration (`kube-system/cilium-config`) and version (the `cilium`
//! DaemonSet's image), Istio ambient's ztunnel and istiod, and the kinds
//! ztp writes.
//!
//! [`judge`] is pure: it turns the observed facts into findings, so every
//! rule is unit-tested without a cluster; [`run`] gathers the facts.

use super::at;
use super::client::{Cluster, Resource};
use super::plan::{self, PlanError};
use serde_json::Value;
use std::collections::BTreeMap;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Info,
    Warn,
    Fail,
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// The setting, as its Helm value and agent option.
    pub what: String,
    pub why: String,
}

fn finding(level: Level, what: &str, why: &str) -> Finding {
    Finding { level, what: what.to_string(), why: why.to_string() }
}

/// What the cluster shows.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// `kube-system/cilium-config`, if present.
    pub cilium_config: Option<BTreeMap<String, String>>,
    /// Cilium's `(major, minor, patch)` from the agent image tag.
    pub cilium_version: Option<(u64, u64, u64)>,
    pub ztunnel: bool,
    /// istiod's container environment, if istiod was found.
    pub istiod_env: Option<BTreeMap<String, String>>,
    /// Kinds ztp writes that the cluster does not serve (preflight text).
    pub missing_kinds: Option<String>,
}

/// Parses `v1.16.5`, `1.18.0-rc.1`, `quay.io/cilium/cilium:v1.16.5@sha256:…`.
pub fn parse_version(image_or_tag: &str) -> Option<(u64, u64, u64)> {
    let without_digest = image_or_tag.split('@').next().unwrap_or("");
    let tag = without_digest.rsplit_once(':').map_or(without_digest, |(_, t)| t);
    let tag = tag.trim_start_matches('v');
    let core = tag.split(['-', '+']).next().unwrap_or("");
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// The findings, worst first within each section order.
pub fn judge(f: &Facts) -> Vec<(String, Vec<Finding>)> {
    let mut sections = Vec::new();
    sections.push(("Cilium".to_string(), cilium(f)));
    sections.push(("Istio ambient".to_string(), istio(f)));
    let kinds = match &f.missing_kinds {
        None => vec![finding(Level::Ok, "kinds", "every kind ztp writes is served")],
        Some(m) => vec![finding(Level::Fail, "kinds", m)],
    };
    sections.push(("Kinds ztp writes".to_string(), kinds));
    sections
}

fn cilium(f: &Facts) -> Vec<Finding> {
    use Level::*;
    let Some(cfg) = &f.cilium_config else {
        return vec![finding(
            Fail,
            "cilium-config",
            "no ConfigMap kube-system/cilium-config: Cilium is not installed (or not in kube-system), and no Cilium layer is enforced",
        )];
    };
    let get = |k: &str| cfg.get(k).map(String::as_str);
    let on = |k: &str, default: bool| get(k).map_or(default, |v| v == "true");
    let mut out = Vec::new();
    match f.cilium_version {
        Some((ma, mi, pa)) => out.push(finding(Ok, "version", &format!("Cilium {ma}.{mi}.{pa}"))),
        None => out.push(finding(
            Warn,
            "version",
            "Cilium's version is unknown (no kube-system/cilium DaemonSet image tag); the version checks are skipped",
        )),
    }
    let before = |v: (u64, u64)| f.cilium_version.is_some_and(|(ma, mi, _)| (ma, mi) < v);

    out.push(if on("cni-exclusive", true) {
        finding(Fail, "cni.exclusive (cni-exclusive)", "is true (Cilium's default), so Cilium removes istio-cni's chained plugin config and ambient pods are not redirected to ztunnel; set cni.exclusive=false")
    } else {
        finding(Ok, "cni.exclusive (cni-exclusive)", "false, so istio-cni can chain after Cilium")
    });

    let kpr = on("kube-proxy-replacement", false);
    let socket_lb = get("bpf-lb-sock").map_or(kpr, |v| v == "true");
    out.push(match (socket_lb, on("bpf-lb-sock-hostns-only", false)) {
        (false, _) => finding(Ok, "socketLB (bpf-lb-sock)", "off"),
        (true, true) => finding(Ok, "socketLB.hostNamespaceOnly (bpf-lb-sock-hostns-only)", "true, so socket load balancing leaves pod traffic to ztunnel"),
        (true, false) => finding(Fail, "socketLB.hostNamespaceOnly (bpf-lb-sock-hostns-only)", "is false while socket load balancing is on, so Service addresses are rewritten to pod IPs inside pods: waypoints are bypassed and their L7 policy is not enforced; set socketLB.hostNamespaceOnly=true"),
    });

    out.push(if on("enable-bpf-masquerade", false) {
        finding(
            Fail,
            "bpf.masquerade (enable-bpf-masquerade)",
            "is true, which Istio ambient does not support; set bpf.masquerade=false",
        )
    } else {
        finding(Ok, "bpf.masquerade (enable-bpf-masquerade)", "false")
    });

    out.push(if on("enable-l7-proxy", true) {
        finding(Ok, "l7Proxy (enable-l7-proxy)", "on, so DNS rules and FQDN egress are enforced")
    } else {
        finding(
            Fail,
            "l7Proxy (enable-l7-proxy)",
            "is false, so Cilium cannot enforce DNS rules, so FQDN egress (toFQDNs) never learns an address and is denied",
        )
    });

    out.push(if on("enable-non-default-deny-policies", true) {
        finding(Ok, "enableNonDefaultDenyPolicies (enable-non-default-deny-policies)", "on, so `enableDefaultDeny: false` is honoured")
    } else {
        finding(Fail, "enableNonDefaultDenyPolicies (enable-non-default-deny-policies)", "is false, so `enableDefaultDeny` is ignored, so the metadata block and the ambient probe allow put every endpoint into default deny")
    });

    out.push(match get("enable-policy").unwrap_or("default") {
        "default" => finding(Ok, "policyEnforcementMode (enable-policy)", "default"),
        "always" => finding(
            Fail,
            "policyEnforcementMode (enable-policy)",
            "is always, so every endpoint, Istio's own included, is default deny before any policy selects it",
        ),
        "never" => finding(
            Fail,
            "policyEnforcementMode (enable-policy)",
            "is never, so Cilium enforces no policy at all, so ztp's L3/L4 layer does nothing",
        ),
        other => {
            finding(Warn, "policyEnforcementMode (enable-policy)", &format!("is `{other}`, which ztp does not know"))
        }
    });

    if before((1, 16)) {
        out.push(finding(
            Warn,
            "endPort",
            "Cilium before 1.16 ignores endPort: a port range is enforced as its first port only",
        ));
    }
    if before((1, 19)) {
        match get("enable-host-legacy-routing") {
            Some("false") => out.push(finding(Fail, "bpf.hostLegacyRouting (enable-host-legacy-routing)", "is false on Cilium before 1.19, where BPF host routing breaks ambient's kubelet probes (cilium#36022); set bpf.hostLegacyRouting=true or upgrade")),
            None if kpr => out.push(finding(Warn, "bpf.hostLegacyRouting (enable-host-legacy-routing)", "is not set and kube-proxy replacement is on, so Cilium before 1.19 may pick BPF host routing, which breaks ambient's kubelet probes (cilium#36022); set bpf.hostLegacyRouting=true")),
            _ => {}
        }
    }
    out
}

fn istio(f: &Facts) -> Vec<Finding> {
    use Level::*;
    let mut out = vec![if f.ztunnel {
        finding(Ok, "ztunnel", "the istio-system/ztunnel DaemonSet exists")
    } else {
        finding(
            Fail,
            "ztunnel",
            "no istio-system/ztunnel DaemonSet, so Istio ambient is not installed, so no mesh identity or ztunnel policy applies",
        )
    }];
    match &f.istiod_env {
        None => out.push(finding(Fail, "istiod", "no istio-system/istiod Deployment")),
        Some(env) => match env.get("PILOT_AUTO_ALLOW_WAYPOINT_POLICY").map(String::as_str) {
            Some("true") => out.push(finding(Info, "PILOT_AUTO_ALLOW_WAYPOINT_POLICY", "true, so istiod adds an ALLOW of the waypoint to bound workloads itself; ztp's explicit waypoint admits stay correct and make the policy readable without it")),
            _ => out.push(finding(Ok, "PILOT_AUTO_ALLOW_WAYPOINT_POLICY", "false (the default); ztp admits each waypoint identity explicitly")),
        },
    }
    out
}

/// Renders the findings; returns the text and whether anything failed.
pub fn render(server: &str, sections: &[(String, Vec<Finding>)]) -> (String, bool) {
    let mut out = format!("ztp doctor: {server}\n");
    let (mut fails, mut warns) = (0, 0);
    for (title, findings) in sections {
        out.push_str(&format!("\n{title}\n"));
        for f in findings {
            let mark = match f.level {
                Level::Ok => "ok  ",
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            fails += usize::from(f.level == Level::Fail);
            warns += usize::from(f.level == Level::Warn);
            out.push_str(&format!("  {mark}  {}: {}\n", f.what, f.why));
        }
    }
    let count = |n: usize, w: &str| if n == 1 { format!("1 {w}") } else { format!("{n} {w}s") };
    out.push_str(&format!("\n{}, {}.\n", count(fails, "problem"), count(warns, "warning")));
    (out, fails > 0)
}

async fn read(
    cluster: &Cluster,
    kinds: &BTreeMap<(String, String), Resource>,
    v: &str,
    k: &str,
    ns: &str,
    name: &str,
) -> Result<Option<Value>, String> {
    match kinds.get(&(v.to_string(), k.to_string())) {
        None => Ok(None),
        Some(r) => cluster.get(r, Some(ns), name).await.map_err(|e| e.to_string()),
    }
}

fn containers(obj: &Value) -> Vec<&Value> {
    at(obj, &["spec", "template", "spec", "containers"]).as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

/// Gathers the facts from the cluster.
pub async fn facts(cluster: &Cluster) -> Result<Facts, String> {
    let wanted: Vec<(String, String)> = [("v1", "ConfigMap"), ("apps/v1", "DaemonSet"), ("apps/v1", "Deployment")]
        .iter()
        .map(|(v, k)| (v.to_string(), k.to_string()))
        .collect();
    let kinds = match cluster.discover(&wanted).await.map_err(|e| e.to_string())? {
        Ok(k) => k,
        Err(missing) => return Err(format!("the cluster does not serve {missing:?}")),
    };
    let mut f = Facts::default();
    if let Some(cm) = read(cluster, &kinds, "v1", "ConfigMap", "kube-system", "cilium-config").await? {
        let data = at(&cm, &["data"])
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.trim().to_string()))).collect());
        f.cilium_config = Some(data.unwrap_or_default());
    }
    if let Some(ds) = read(cluster, &kinds, "apps/v1", "DaemonSet", "kube-system", "cilium").await? {
        let cs = containers(&ds);
        let agent = cs.iter().find(|c| at(c, &["name"]).as_str() == Some("cilium-agent")).or(cs.first());
        f.cilium_version = agent.and_then(|c| at(c, &["image"]).as_str()).and_then(parse_version);
    }
    f.ztunnel = read(cluster, &kinds, "apps/v1", "DaemonSet", "istio-system", "ztunnel").await?.is_some();
    if let Some(istiod) = read(cluster, &kinds, "apps/v1", "Deployment", "istio-system", "istiod").await? {
        let env = containers(&istiod)
            .iter()
            .filter_map(|c| at(c, &["env"]).as_array())
            .flatten()
            .filter_map(|e| Some((meta_or(e, "name")?, meta_or(e, "value").unwrap_or_default())))
            .collect();
        f.istiod_env = Some(env);
    }
    f.missing_kinds = match plan::discover(cluster).await {
        Ok(_) => None,
        Err(PlanError::Preflight(m)) => Some(m),
        Err(e) => return Err(e.to_string()),
    };
    Ok(f)
}

fn meta_or(v: &Value, k: &str) -> Option<String> {
    at(v, &[k]).as_str().map(str::to_string)
}

/// `ztp doctor`: prints the findings; exit 1 when a precondition fails.
pub async fn run(cluster: &Cluster) -> Result<u8, String> {
    let f = facts(cluster).await?;
    let (text, failed) = render(&cluster.server, &judge(&f));
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
    Ok(u8::from(failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        let cfg = [
            ("cni-exclusive", "false"),
            ("kube-proxy-replacement", "true"),
            ("bpf-lb-sock-hostns-only", "true"),
            ("enable-bpf-masquerade", "false"),
            ("enable-policy", "default"),
            ("enable-host-legacy-routing", "true"),
        ];
        Facts {
            cilium_config: Some(cfg.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            cilium_version: Some((1, 18, 2)),
            ztunnel: true,
            istiod_env: Some(BTreeMap::new()),
            missing_kinds: None,
        }
    }

    fn failing(f: &Facts) -> Vec<String> {
        judge(f).into_iter().flat_map(|(_, fs)| fs).filter(|f| f.level == Level::Fail).map(|f| f.what).collect()
    }

    fn set(f: &mut Facts, k: &str, v: &str) {
        if let Some(c) = f.cilium_config.as_mut() {
            c.insert(k.into(), v.into());
        }
    }

    #[test]
    fn a_healthy_cluster_passes() {
        assert!(failing(&healthy()).is_empty(), "{:?}", failing(&healthy()));
    }

    #[test]
    fn each_precondition_fails_on_its_own() {
        let cases: &[(&str, &str, &str)] = &[
            ("cni-exclusive", "true", "cni.exclusive"),
            ("bpf-lb-sock-hostns-only", "false", "socketLB.hostNamespaceOnly"),
            ("enable-bpf-masquerade", "true", "bpf.masquerade"),
            ("enable-l7-proxy", "false", "l7Proxy"),
            ("enable-non-default-deny-policies", "false", "enableNonDefaultDenyPolicies"),
            ("enable-policy", "always", "policyEnforcementMode"),
            ("enable-policy", "never", "policyEnforcementMode"),
        ];
        for (k, v, what) in cases {
            let mut f = healthy();
            set(&mut f, k, v);
            let fails = failing(&f);
            assert_eq!(fails.len(), 1, "{k}={v}: {fails:?}");
            assert!(fails.iter().all(|w| w.starts_with(what)), "{k}={v}: {fails:?}");
        }
        // cni-exclusive defaults to true: absent is a failure.
        let mut f = healthy();
        if let Some(c) = f.cilium_config.as_mut() {
            c.remove("cni-exclusive");
        }
        assert_eq!(failing(&f).len(), 1);
    }

    #[test]
    fn version_rules() {
        let mut f = healthy();
        set(&mut f, "enable-host-legacy-routing", "false");
        assert_eq!(failing(&f), vec!["bpf.hostLegacyRouting (enable-host-legacy-routing)".to_string()]);
        f.cilium_version = Some((1, 19, 0));
        assert!(failing(&f).is_empty());
        f.cilium_version = Some((1, 15, 7));
        let warns: Vec<String> =
            judge(&f).into_iter().flat_map(|(_, fs)| fs).filter(|f| f.level == Level::Warn).map(|f| f.what).collect();
        assert_eq!(warns, vec!["endPort".to_string()]);
    }

    #[test]
    fn socket_lb_needs_host_namespace_only_only_when_on() {
        let mut f = healthy();
        set(&mut f, "kube-proxy-replacement", "false");
        set(&mut f, "bpf-lb-sock-hostns-only", "false");
        assert!(failing(&f).is_empty());
        set(&mut f, "bpf-lb-sock", "true");
        assert_eq!(failing(&f), vec!["socketLB.hostNamespaceOnly (bpf-lb-sock-hostns-only)".to_string()]);
    }

    #[test]
    fn missing_components_fail() {
        let f = Facts::default();
        let fails = failing(&f);
        assert!(fails.contains(&"cilium-config".to_string()), "{fails:?}");
        assert!(fails.contains(&"ztunnel".to_string()), "{fails:?}");
        assert!(fails.contains(&"istiod".to_string()), "{fails:?}");
    }

    #[test]
    fn versions_parse_from_images() {
        assert_eq!(parse_version("quay.io/cilium/cilium:v1.16.5@sha256:abc"), Some((1, 16, 5)));
        assert_eq!(parse_version("v1.18.0-rc.1"), Some((1, 18, 0)));
        assert_eq!(parse_version("1.19"), Some((1, 19, 0)));
        assert_eq!(parse_version("quay.io/cilium/cilium:latest"), None);
        assert_eq!(parse_version("localhost:5000/cilium"), None);
    }
}
