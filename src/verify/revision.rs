//! A path as it was at a git revision, for `ztp diff --base REV`: the
//! files under it at that commit, read with `git ls-tree` and `git
//! cat-file` from the repository that holds the path, without touching the
//! work tree. Paths are kept relative to the repository's top, so a
//! program read this way resolves its imports as it would on disk. Only
//! reads; never runs anything but git.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of `path` at `rev`: the path relative to the repository's top
/// (what the caller should load), and every file under it with its bytes.
pub struct AtRevision {
    pub path: PathBuf,
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("git {}: {}", args.join(" "), err.trim()))
    }
}

/// Reads `path` (a file or directory in a git work tree) as of `rev`.
pub fn read(path: &Path, rev: &str) -> Result<AtRevision, String> {
    if rev.starts_with('-') {
        return Err(format!("`{rev}` is not a revision"));
    }
    let real = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = if real.is_dir() { real.clone() } else { real.parent().map(Path::to_path_buf).unwrap_or_default() };
    let top = git(&dir, &["rev-parse", "--show-toplevel"])?;
    let top = PathBuf::from(String::from_utf8_lossy(&top).trim());
    let top = std::fs::canonicalize(&top).unwrap_or(top);
    let rel = real.strip_prefix(&top).map_err(|_| format!("{} is not inside {}", path.display(), top.display()))?;
    let commit = git(&top, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])
        .map_err(|_| format!("`{rev}` is not a revision of {}", top.display()))?;
    let commit = String::from_utf8_lossy(&commit).trim().to_string();
    let spec = rel.to_string_lossy().replace('\\', "/");
    let mut args = vec!["ls-tree", "-r", "-z", "--name-only", commit.as_str()];
    if !spec.is_empty() {
        args.extend(["--", spec.as_str()]);
    }
    let listing = git(&top, &args)?;
    let mut files = Vec::new();
    for name in listing.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let bytes = git(&top, &["cat-file", "blob", &format!("{commit}:{name}")])?;
        files.push((PathBuf::from(name), bytes));
    }
    if files.is_empty() {
        return Err(format!("{} does not exist at {rev}", if spec.is_empty() { "." } else { &spec }));
    }
    files.sort();
    Ok(AtRevision { path: rel.to_path_buf(), files })
}
