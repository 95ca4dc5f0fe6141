//! Read-only copies of the text compiled into the binary — the stdlib
//! modules and the diagnostic codes' pages — so that an editor can open
//! them as ordinary files.
//!
//! Go to definition on `import "std/baseline"` and a diagnostic's code link
//! need a URI the editor can open. A custom scheme (`ztp-stdlib:`) would
//! need code in every client to serve it, and Neovim and Helix have none;
//! a `file:` URI works everywhere. So the texts are written once per
//! version under the user's cache directory (`$XDG_CACHE_HOME/ztp/<version>`,
//! else `~/.cache/ztp/<version>`), made read-only, and rewritten only when
//! their content differs. If nothing can be written, the links are left out.

use crate::diag::codes::TABLE;
use crate::resolve::stdlib::MODULES;
use std::path::{Path, PathBuf};

/// Where the copies live, once written.
#[derive(Clone, Debug)]
pub struct Embedded {
    pub dir: PathBuf,
}

impl Embedded {
    /// Writes the copies (where they are missing or differ); `None` if the
    /// directory cannot be written.
    pub fn materialize() -> Option<Embedded> {
        let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
        };
        let dir = base.join("ztp").join(env!("CARGO_PKG_VERSION"));
        let files = MODULES
            .iter()
            .map(|(name, text)| (PathBuf::from("std").join(format!("{name}.ztp")), *text))
            .chain(TABLE.iter().map(|c| (PathBuf::from("codes").join(format!("{}.md", c.code.as_str())), c.doc)));
        for (rel, text) in files {
            write_read_only(&dir.join(rel), text).ok()?;
        }
        Some(Embedded { dir })
    }

    /// The copy of stdlib module `std/<name>`.
    pub fn stdlib(&self, module: &str) -> PathBuf {
        self.dir.join(format!("{module}.ztp"))
    }

    /// The page of a diagnostic code.
    pub fn code_page(&self, code: &str) -> PathBuf {
        self.dir.join("codes").join(format!("{code}.md"))
    }

    /// Whether a path is one of the copies (never checked as a program).
    pub fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.dir)
    }
}

fn write_read_only(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if let Ok(meta) = std::fs::metadata(path) {
        let mut perms = meta.permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(path, perms)?;
    }
    std::fs::write(path, text)?;
    let mut perms = std::fs::metadata(path)?.permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(path, perms)
}
