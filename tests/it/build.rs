//! `ztp build`: every example and build fixture is snapshotted as one YAML
//! stream; output is byte-identical across runs and independent of the
//! order of declarations; the directory layout, JSON and GitOps waves.

use crate::support::{example_dirs, relative, root};
use std::path::{Path, PathBuf};
use ztp::driver;
use ztp::manifest::{self, Manifest};
use ztp::output::{self, Format, Waves};
use ztp::resolve::load::RealFs;

fn build(path: &Path) -> Vec<Manifest> {
    let built = driver::build(&RealFs, &relative(path), None).unwrap();
    let rendered: Vec<String> = built
        .checked
        .diagnostics
        .sorted()
        .iter()
        .map(|d| ztp::diag::render::human(d, &built.checked.sources, false))
        .collect();
    assert!(built.checked.diagnostics.is_empty(), "{}:\n{}", path.display(), rendered.join(""));
    built.manifests.unwrap()
}

fn programs() -> Vec<PathBuf> {
    let mut v = example_dirs();
    let fixtures = root().join("tests/fixtures/build");
    if let Ok(entries) = std::fs::read_dir(&fixtures) {
        let mut files: Vec<PathBuf> =
            entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "ztp")).collect();
        files.sort();
        v.extend(files);
    }
    v
}

#[test]
fn examples_build_snapshots() {
    for p in programs() {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let yaml = manifest::to_yaml(&build(&p));
        insta::assert_snapshot!(format!("build__{name}"), yaml);
    }
}

#[test]
fn building_twice_gives_the_same_bytes() {
    for p in programs() {
        let a = manifest::to_yaml(&build(&p));
        let b = manifest::to_yaml(&build(&p));
        assert_eq!(a, b, "{}", p.display());
        assert_eq!(manifest::to_json(&build(&p)), manifest::to_json(&build(&p)));
    }
}

/// Objects without the provenance annotation, which names lines.
fn without_origins(ms: &[Manifest]) -> String {
    let mut ms = ms.to_vec();
    for m in &mut ms {
        m.annotations.remove("ztp.dev/source");
    }
    manifest::to_yaml(&ms)
}

#[test]
fn declaration_order_does_not_change_the_output() {
    use ztp::ast::Stmt;
    for p in programs() {
        let files: Vec<PathBuf> = if p.is_dir() { crate::support::ztp_files(&p) } else { vec![p.clone()] };
        let scratch = std::env::temp_dir().join(format!(
            "ztp-order-{}-{}",
            std::process::id(),
            p.file_stem().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let mut file = crate::support::parse(&text).file.unwrap();
            // Reverse every statement list: top level and every block body.
            fn reverse(stmts: &mut [Stmt]) {
                stmts.reverse();
                for s in stmts.iter_mut() {
                    if let Stmt::Block(b) = s {
                        reverse(&mut b.body.stmts);
                    }
                }
            }
            reverse(&mut file.stmts);
            let out = ztp::fmt::format(&file, &Default::default(), &text);
            std::fs::write(scratch.join(f.file_name().unwrap()), out).unwrap();
        }
        let target = if p.is_dir() { scratch.clone() } else { scratch.join(p.file_name().unwrap()) };
        let shuffled = driver::build(&RealFs, &target, Some("order")).unwrap();
        let shuffled = shuffled.manifests.unwrap_or_else(|| panic!("{} does not build reversed", p.display()));
        let original = driver::build(&RealFs, &relative(&p), Some("order")).unwrap().manifests.unwrap();
        similar_asserts(&p, &without_origins(&original), &without_origins(&shuffled));
        let _ = std::fs::remove_dir_all(&scratch);
    }
}

fn similar_asserts(p: &Path, a: &str, b: &str) {
    if a != b {
        let diff = similar::TextDiff::from_lines(a, b).unified_diff().to_string();
        panic!("{}: reversing declarations changed the output:\n{diff}", p.display());
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ztp-build-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn directory_layout_lists_layers_in_order_and_cleans_up_after_itself() {
    let ms = build(&root().join("examples/hello-db"));
    let dir = scratch("layout");
    let files = output::files(&ms, Format::Yaml, &Waves::None, "hello-db");
    let names: Vec<String> = files.keys().map(|k| k.display().to_string()).collect();
    assert_eq!(
        names,
        [
            "00-namespaces.yaml",
            "10-cluster-baseline.yaml",
            "20-workload-network.yaml",
            "30-mesh-identity.yaml",
            "40-l7.yaml",
            "50-ingress.yaml",
            "90-default-deny.yaml",
            "kustomization.yaml"
        ]
    );
    let k = &files[&PathBuf::from("kustomization.yaml")];
    let listed: Vec<&str> = k.lines().filter_map(|l| l.strip_prefix("- ")).collect();
    assert!(k.contains("sortOptions:\n  order: fifo"), "kustomize must keep the order");
    assert_eq!(listed, names[..7].iter().map(String::as_str).collect::<Vec<_>>());
    output::write_dir(&dir, &files).unwrap();
    // A file of the user's stays; a layer this build no longer has goes.
    std::fs::write(dir.join("README.md"), "mine").unwrap();
    let fewer: Vec<Manifest> = ms.iter().filter(|m| m.layer != ztp::manifest::Layer::Ingress).cloned().collect();
    output::write_dir(&dir, &output::files(&fewer, Format::Yaml, &Waves::None, "hello-db")).unwrap();
    assert!(!dir.join("50-ingress.yaml").exists());
    assert!(dir.join("README.md").exists());
    assert!(!std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap().contains("50-ingress"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_is_a_kubectl_list() {
    let ms = build(&root().join("examples/hello-db"));
    let v: serde_json::Value = serde_json::from_str(&manifest::to_json(&ms)).unwrap();
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"].as_array().unwrap().len(), ms.len());
}

#[test]
fn argocd_waves_follow_layers_and_steps() {
    let mut ms = build(&root().join("examples/hello-db"));
    output::annotate_argocd(&mut ms);
    let wave = |kind: &str, name: &str| -> u32 {
        let m = ms.iter().find(|m| m.kind == kind && m.name == name).unwrap();
        m.annotations["argocd.argoproj.io/sync-wave"].parse().unwrap()
    };
    let waypoint = wave("Gateway", "waypoint");
    let l7 = wave("AuthorizationPolicy", "ztp-l7-hello-app");
    let binding = wave("Service", "hello-app");
    let narrowed = wave("AuthorizationPolicy", "ztp-l4-hello-app");
    assert!(waypoint < l7 && l7 < binding && binding < narrowed, "{waypoint} {l7} {binding} {narrowed}");
    assert!(wave("Namespace", "demo") < wave("CiliumNetworkPolicy", "ztp-wl-postgres"));
    assert!(narrowed < wave("CiliumClusterwideNetworkPolicy", "ztp-hello-db-default-deny"));
    // Waves never decrease in apply order.
    let waves: Vec<u8> = ms.iter().map(Manifest::wave).collect();
    assert!(waves.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn flux_gets_one_kustomization_per_wave_chained_by_depends_on() {
    let ms = build(&root().join("examples/hello-db"));
    let waves = Waves::Flux { source: "flux-system".into(), path: "./out".into() };
    let files = output::files(&ms, Format::Yaml, &waves, "hello-db");
    let flux = &files[&PathBuf::from("flux-kustomizations.yaml")];
    let docs: Vec<serde_yaml::Value> =
        flux.split("---\n").filter(|d| !d.trim().is_empty()).map(|d| serde_yaml::from_str(d).unwrap()).collect();
    let dirs: std::collections::BTreeSet<String> =
        files.keys().filter_map(|k| k.parent()).map(|p| p.display().to_string()).filter(|p| !p.is_empty()).collect();
    assert_eq!(docs.len(), dirs.len());
    for (i, d) in docs.iter().enumerate() {
        let deps = &d["spec"]["dependsOn"];
        if i == 0 {
            assert!(deps.is_null());
        } else {
            assert_eq!(deps[0]["name"], docs[i - 1]["metadata"]["name"]);
        }
        assert_eq!(d["spec"]["wait"], serde_yaml::Value::Bool(true));
        assert!(d["spec"]["path"].as_str().unwrap().starts_with("./out/"));
    }
}

fn find(ms: &[Manifest], kind: &str, name: &str) -> serde_json::Value {
    ms.iter().find(|m| m.kind == kind && m.name == name).unwrap_or_else(|| panic!("no {kind}/{name}")).to_value()
}

/// The lab's protection, object by object (docs/layers.md).
#[test]
fn hello_db_has_the_labs_protection_layer_by_layer() {
    use serde_json::json;
    let ms = build(&root().join("examples/hello-db"));
    // Ambient enrollment.
    for ns in ["demo", "monitoring"] {
        assert_eq!(find(&ms, "Namespace", ns)["metadata"]["labels"]["istio.io/dataplane-mode"], "ambient");
    }
    // STRICT mTLS mesh-wide.
    let pa = find(&ms, "PeerAuthentication", "default");
    assert_eq!(pa["metadata"]["namespace"], "istio-system");
    assert_eq!(pa["spec"]["mtls"]["mode"], "STRICT");
    // Gateway -> hello-app: only GET on the three paths, at the waypoint, from the gateway's identity.
    let l7 = find(&ms, "AuthorizationPolicy", "ztp-l7-hello-app");
    assert_eq!(l7["spec"]["targetRefs"], json!([{"group": "", "kind": "Service", "name": "hello-app"}]));
    // Prometheus scrapes the metrics port through the Service too (a
    // ServiceMonitor), an L4 rule at the waypoint.
    assert_eq!(
        l7["spec"]["rules"],
        json!([
            {
                "from": [{"source": {"principals": ["cluster.local/ns/demo/sa/hello-gateway-istio"]}}],
                "to": [{"operation": {"methods": ["GET"], "paths": ["/", "/github", "/health"], "ports": ["8000"]}}],
            },
            {
                "from": [{"source": {"principals": ["cluster.local/ns/monitoring/sa/prometheus"]}}],
                "to": [{"operation": {"ports": ["9102"]}}],
            },
        ])
    );
    // hello-app admits only the waypoint on 8000; on its metrics port,
    // Prometheus directly (pod IPs) and the waypoint (the Service).
    let l4 = find(&ms, "AuthorizationPolicy", "ztp-l4-hello-app");
    assert_eq!(
        l4["spec"]["rules"],
        json!([
            {"from": [{"source": {"principals": ["cluster.local/ns/demo/sa/waypoint"]}}], "to": [{"operation": {"ports": ["8000"]}}]},
            {"from": [{"source": {"principals": ["cluster.local/ns/demo/sa/waypoint", "cluster.local/ns/monitoring/sa/prometheus"]}}], "to": [{"operation": {"ports": ["9102"]}}]},
        ])
    );
    // In Cilium too, Prometheus may take either path: hello-app's pods, or
    // the waypoint, which admits it on HBONE.
    let hbone = json!([{"ports": [{"port": "15008", "protocol": "TCP"}]}]);
    let prom = find(&ms, "CiliumNetworkPolicy", "ztp-wl-prometheus");
    assert_eq!(
        prom["spec"]["egress"][0],
        json!({
            "toEndpoints": [
                {"matchLabels": {"app": "hello-app", "k8s:io.kubernetes.pod.namespace": "demo"}},
                {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "waypoint", "k8s:io.kubernetes.pod.namespace": "demo"}},
            ],
            "toPorts": hbone,
        })
    );
    let wp = find(&ms, "CiliumNetworkPolicy", "ztp-wp-waypoint");
    assert_eq!(wp["spec"]["ingress"][0]["toPorts"], hbone);
    assert!(wp["spec"]["ingress"][0]["fromEndpoints"].to_string().contains("prometheus"));
    let binding = find(&ms, "Service", "hello-app");
    assert_eq!(binding["metadata"]["labels"]["istio.io/use-waypoint"], "waypoint");
    assert_eq!(binding["metadata"]["labels"]["istio.io/ingress-use-waypoint"], "true");
    assert!(binding.get("spec").is_none(), "the binding must carry labels only");
    // hello-app -> postgres:5432 only.
    let pg = find(&ms, "AuthorizationPolicy", "ztp-l4-postgres");
    assert_eq!(
        pg["spec"]["rules"],
        json!([{"from": [{"source": {"principals": ["cluster.local/ns/demo/sa/hello-app"]}}], "to": [{"operation": {"ports": ["5432"]}}]}])
    );
    let pg_net = find(&ms, "CiliumNetworkPolicy", "ztp-wl-postgres");
    assert_eq!(
        pg_net["spec"]["ingress"],
        json!([{
            "fromEndpoints": [{"matchLabels": {"app": "hello-app", "k8s:io.kubernetes.pod.namespace": "demo"}}],
            "toPorts": [{"ports": [{"port": "15008", "protocol": "TCP"}]}],
        }])
    );
    assert!(pg_net["spec"].get("egress").is_none(), "postgres starts no connection");
    // hello-app -> api.github.com:443 and nothing else outside the cluster.
    let app = find(&ms, "CiliumNetworkPolicy", "ztp-wl-hello-app");
    let text = app.to_string();
    let fqdns: Vec<&serde_json::Value> =
        app["spec"]["egress"].as_array().unwrap().iter().filter(|r| r.get("toFQDNs").is_some()).collect();
    assert_eq!(fqdns.len(), 1);
    assert_eq!(fqdns[0]["toFQDNs"], json!([{"matchName": "api.github.com"}]));
    assert_eq!(fqdns[0]["toPorts"], json!([{"ports": [{"port": "443", "protocol": "TCP"}]}]));
    assert!(!text.contains("cloudflare") && !text.contains("world") && !text.contains("toCIDR"));
    assert!(text.contains(r#""dns":[{"matchName":"api.github.com"}]"#), "the FQDN rule needs its DNS rule");
    // Metadata endpoint denied; default deny everywhere else.
    let deny = find(&ms, "CiliumClusterwideNetworkPolicy", "ztp-hello-db-deny-egress");
    assert_eq!(deny["spec"]["egressDeny"], json!([{"toCIDRSet": [{"cidr": "169.254.169.254/32"}]}]));
    assert_eq!(deny["spec"]["enableDefaultDeny"], json!({"ingress": false, "egress": false}));
    let dd = find(&ms, "CiliumClusterwideNetworkPolicy", "ztp-hello-db-default-deny");
    assert_eq!(dd["spec"]["ingress"], json!([{}]));
    assert_eq!(dd["spec"]["egress"], json!([{}]));
    assert_eq!(
        ms.iter().filter(|m| m.kind == "NetworkPolicy").map(|m| m.namespace.clone().unwrap()).collect::<Vec<_>>(),
        ["demo", "monitoring"]
    );
}

/// Properties DOMAIN.md demands of every object, on every build.
#[test]
fn every_build_respects_the_domain_rules() {
    for p in programs() {
        let ms = build(&p);
        let mut seen = std::collections::BTreeSet::new();
        for m in &ms {
            assert!(
                seen.insert((m.group_kind(), m.namespace.clone(), m.name.clone())),
                "{}: {} emitted twice",
                p.display(),
                m.id()
            );
            let v = m.to_value();
            let spec = &v["spec"];
            match m.kind {
                "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy" => {
                    let sections = ["ingress", "ingressDeny", "egress", "egressDeny"];
                    assert!(sections.iter().any(|s| spec.get(*s).is_some()), "{}: no section", m.id());
                    for s in sections {
                        if let Some(list) = spec.get(s) {
                            assert!(!list.as_array().unwrap().is_empty(), "{}: empty `{s}` fails open", m.id());
                        }
                    }
                    // Only the default deny puts pods into default deny.
                    if m.name.ends_with("-default-deny") {
                        assert!(spec.get("enableDefaultDeny").is_none());
                    } else {
                        assert_eq!(
                            spec["enableDefaultDeny"],
                            serde_json::json!({"ingress": false, "egress": false}),
                            "{}",
                            m.id()
                        );
                    }
                    // Every rule names its peers; only the probe allow has no ports.
                    for s in sections {
                        for rule in spec.get(s).and_then(|l| l.as_array()).into_iter().flatten() {
                            let Some(r) = rule.as_object() else { continue };
                            if r.is_empty() {
                                continue; // `[{}]`, the default deny
                            }
                            let has_peer =
                                r.keys().any(|k| (k.starts_with("from") || k.starts_with("to")) && k != "toPorts");
                            assert!(has_peer, "{}: port-only rule {rule}", m.id());
                            let probe =
                                rule.get("fromCIDR").is_some_and(|c| c == &serde_json::json!(["169.254.7.127/32"]));
                            let deny = s.ends_with("Deny");
                            assert!(r.contains_key("toPorts") || probe || deny, "{}: peer-only rule {rule}", m.id());
                        }
                    }
                    // Cilium L7 (HTTP) rules break ambient pods.
                    assert!(!spec.to_string().contains("\"http\""), "{}: Cilium HTTP rules", m.id());
                    // A namespace NotIn must come with Exists.
                    let text = spec.to_string();
                    if text.contains("\"NotIn\"") && text.contains("io.kubernetes.pod.namespace\",\"operator\":\"NotIn")
                    {
                        assert!(text.contains("\"Exists\""), "{}", m.id());
                    }
                }
                "AuthorizationPolicy" => {
                    let text = spec.to_string();
                    if spec.get("selector").is_some() {
                        for l7 in ["methods", "paths", "hosts", "requestPrincipals", "remoteIpBlocks", "request."] {
                            assert!(
                                !text.contains(l7),
                                "{}: L7 attribute `{l7}` in a ztunnel policy fails closed",
                                m.id()
                            );
                        }
                        assert!(spec.get("targetRefs").is_none());
                    } else {
                        assert!(spec.get("targetRefs").is_some(), "{}: neither selector nor targetRefs", m.id());
                    }
                    assert_eq!(spec["action"], "ALLOW");
                }
                _ => {}
            }
            if m.ownership == ztp::manifest::Ownership::Owned {
                assert_eq!(m.labels["app.kubernetes.io/managed-by"], "ztp");
                assert!(m.labels.contains_key("app.kubernetes.io/part-of"));
            } else {
                assert!(
                    !m.labels.contains_key("app.kubernetes.io/managed-by"),
                    "{}: ownership label on a borrowed object",
                    m.id()
                );
                assert!(v.get("spec").is_none());
                // GitOps engines must never prune what ztp only labels.
                assert_eq!(m.annotations["argocd.argoproj.io/sync-options"], "Prune=false,Delete=false");
                assert_eq!(m.annotations["kustomize.toolkit.fluxcd.io/prune"], "disabled");
            }
            assert!(m.annotations.contains_key("ztp.dev/source"), "{}", m.id());
        }
    }
}
