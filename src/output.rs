//! Writing a build: one file per layer and a `kustomization.yaml`, or one
//! stream; optionally with GitOps ordering.
//!
//! `--annotate-waves argocd` adds `argocd.argoproj.io/sync-wave` to every
//! object (the layer's number plus its step, so a waypoint precedes its
//! policy, the policy its binding, the binding the narrowed L4 policy).
//! Flux orders only whole Kustomizations, so `--annotate-waves flux` writes
//! one directory per wave and a `flux-kustomizations.yaml` that chains them
//! with `dependsOn` and `wait: true`. Files ztp wrote before and no longer
//! produces are removed; no other file in the directory is touched.

use crate::manifest::{self, Layer, Manifest};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    fn ext(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
        }
    }

    fn render(self, ms: &[Manifest]) -> String {
        match self {
            Format::Yaml => manifest::to_yaml(ms),
            Format::Json => manifest::to_json(ms),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Waves {
    None,
    ArgoCd,
    /// Flux Kustomizations reading `path` (relative to the repository root)
    /// from the GitRepository `source`.
    Flux {
        source: String,
        path: String,
    },
}

const ARGO_WAVE: &str = "argocd.argoproj.io/sync-wave";

/// Adds Argo CD sync waves.
pub fn annotate_argocd(ms: &mut [Manifest]) {
    for m in ms {
        m.annotations.insert(ARGO_WAVE.into(), m.wave().to_string());
    }
}

/// The whole build as one stream (`-o -`).
pub fn stream(ms: &[Manifest], format: Format) -> String {
    format.render(ms)
}

/// [`stream`], written to `w` as it is made: YAML a few thousand objects
/// at a time (rendered in parts on every core, written in order), so the
/// whole text is never held at once.
pub fn write_stream(ms: &[Manifest], format: Format, w: &mut impl std::io::Write) -> std::io::Result<()> {
    const PART: usize = 256;
    let yaml = |part: &&[Manifest]| {
        let mut text = String::new();
        for m in *part {
            text.push_str("---\n");
            text.push_str(&m.to_yaml());
        }
        text
    };
    match format {
        Format::Yaml => {
            for batch in ms.chunks(PART * 16) {
                let parts: Vec<&[Manifest]> = batch.chunks(PART).collect();
                for (text, part) in crate::par::map(&parts, yaml).into_iter().zip(&parts) {
                    w.write_all(text.unwrap_or_else(|| yaml(part)).as_bytes())?;
                }
            }
            Ok(())
        }
        Format::Json => w.write_all(format.render(ms).as_bytes()),
    }
}

/// The files of a build, by relative path, in order.
pub fn files(ms: &[Manifest], format: Format, waves: &Waves, stack: &str) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    match waves {
        Waves::Flux { source, path } => {
            let mut by_wave: BTreeMap<u8, Vec<Manifest>> = BTreeMap::new();
            for m in ms {
                by_wave.entry(m.wave()).or_default().push(m.clone());
            }
            let mut kustomizations = Vec::new();
            let mut previous: Option<String> = None;
            for (wave, items) in &by_wave {
                let layer = items.first().map_or(Layer::Namespaces, |m| m.layer);
                let dir = wave_dir(*wave, layer);
                let file = format!("{dir}.{}", format.ext());
                out.insert(PathBuf::from(&dir).join(&file), format.render(items));
                out.insert(PathBuf::from(&dir).join("kustomization.yaml"), kustomization(&[file]));
                let name = format!("ztp-{stack}-{dir}");
                kustomizations.push(flux_kustomization(
                    &name,
                    stack,
                    source,
                    &format!("{path}/{dir}"),
                    previous.as_deref(),
                ));
                previous = Some(name);
            }
            out.insert(PathBuf::from("flux-kustomizations.yaml"), manifest_values_yaml(&kustomizations));
        }
        Waves::None | Waves::ArgoCd => {
            let mut names = Vec::new();
            for layer in Layer::ALL {
                let items: Vec<Manifest> = ms.iter().filter(|m| m.layer == layer).cloned().collect();
                if items.is_empty() {
                    continue;
                }
                let file = format!("{}.{}", layer.file_stem(), format.ext());
                out.insert(PathBuf::from(&file), format.render(&items));
                names.push(file);
            }
            out.insert(PathBuf::from("kustomization.yaml"), kustomization(&names));
        }
    }
    out
}

fn wave_dir(wave: u8, layer: Layer) -> String {
    let stem = layer.file_stem();
    let name = stem.split_once('-').map_or(stem.as_str(), |(_, n)| n);
    format!("{wave:02}-{name}")
}

fn kustomization(resources: &[String]) -> String {
    let mut s = String::from("# Generated by ztp. Resources are listed in apply order.\n");
    s.push_str("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n");
    for r in resources {
        s.push_str(&format!("- {r}\n"));
    }
    // Keep that order: kustomize would otherwise sort by kind.
    s.push_str("sortOptions:\n  order: fifo\n");
    s
}

fn flux_kustomization(name: &str, stack: &str, source: &str, path: &str, after: Option<&str>) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "interval": "10m",
        "path": path,
        "prune": true,
        "wait": true,
        "sourceRef": {"kind": "GitRepository", "name": source},
    });
    if let (Some(prev), Some(m)) = (after, spec.as_object_mut()) {
        m.insert("dependsOn".into(), serde_json::json!([{"name": prev}]));
    }
    serde_json::json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": name,
            "namespace": "flux-system",
            "labels": {"app.kubernetes.io/managed-by": "ztp", "app.kubernetes.io/part-of": stack},
        },
        "spec": spec,
    })
}

fn manifest_values_yaml(values: &[serde_json::Value]) -> String {
    let mut out = String::new();
    for v in values {
        out.push_str("---\n");
        out.push_str(&crate::yaml::to_string(v));
    }
    out
}

/// Every file name a build may write at the top of its directory, for
/// removing the ones a new build no longer produces.
fn known_names(name: &str) -> bool {
    let layer_file = Layer::ALL.iter().any(|l| {
        let stem = l.file_stem();
        name == format!("{stem}.yaml") || name == format!("{stem}.json")
    });
    layer_file || name == "kustomization.yaml" || name == "flux-kustomizations.yaml"
}

/// Writes the files into `dir`, removing files and wave directories of an
/// earlier build that this one does not produce.
pub fn write_dir(dir: &Path, files: &BTreeMap<PathBuf, String>) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let ours_dir = path.is_dir()
                && is_wave_dir(&name)
                && std::fs::read_to_string(path.join("kustomization.yaml"))
                    .is_ok_and(|k| k.starts_with("# Generated by ztp."));
            let produced = files.keys().any(|k| k.components().next().is_some_and(|c| c.as_os_str() == name.as_str()));
            if produced {
                continue;
            }
            if ours_dir {
                std::fs::remove_dir_all(&path)?;
            } else if known_names(&name) && path.is_file() {
                std::fs::remove_file(&path)?;
            }
        }
    }
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Leave unchanged files alone, so timestamps mean something.
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text)?;
        }
        written.push(path);
    }
    Ok(written)
}

/// `NN-name` where NN is a wave and name a layer's.
fn is_wave_dir(name: &str) -> bool {
    let Some((n, rest)) = name.split_once('-') else { return false };
    n.len() == 2
        && n.chars().all(|c| c.is_ascii_digit())
        && Layer::ALL.iter().any(|l| l.file_stem().split_once('-').is_some_and(|(_, x)| x == rest))
}
