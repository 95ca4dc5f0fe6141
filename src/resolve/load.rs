//! Loading a program: the entry files, then everything they import.
//!
//! A program is one `.ztp` file or every `.ztp` file of a directory (sorted by
//! name), plus the transitive closure of their imports. `std/<module>` names a
//! stdlib module compiled into the binary; any other import is a file path
//! relative to the importing file. Each file is loaded and parsed once; import
//! cycles are reported with the whole chain. File access goes through
//! [`FileSystem`] so that tests can run on an in-memory tree.

use super::stdlib;
use crate::ast::{self, Stmt};
use crate::diag::{Diagnostic, codes, did_you_mean};
use crate::source::{Origin, SourceId, SourceMap, Span};
use crate::syntax;
use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

/// What the loader needs from the outside world.
pub trait FileSystem {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn is_dir(&self, path: &Path) -> bool;
    /// The `.ztp` files directly inside `dir`.
    fn ztp_files(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
}

/// The real file system.
pub struct RealFs;

impl FileSystem for RealFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn ztp_files(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "ztp") && path.is_file() {
                out.push(path);
            }
        }
        Ok(out)
    }
}

/// An in-memory file system for tests and editors.
#[derive(Default)]
pub struct MemoryFs {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

impl MemoryFs {
    pub fn with(files: &[(&str, &str)]) -> Self {
        MemoryFs { files: files.iter().map(|(p, t)| (PathBuf::from(p), t.as_bytes().to_vec())).collect() }
    }
}

impl FileSystem for MemoryFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files.get(&normalize(path)).cloned().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn is_dir(&self, path: &Path) -> bool {
        let p = normalize(path);
        self.files.keys().any(|k| k.parent() == Some(p.as_path()))
    }

    fn ztp_files(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let d = normalize(dir);
        Ok(self
            .files
            .keys()
            .filter(|k| k.parent() == Some(d.as_path()) && k.extension().is_some_and(|e| e == "ztp"))
            .cloned()
            .collect())
    }
}

/// One parsed file of the program.
#[derive(Debug)]
pub struct LoadedFile {
    pub id: SourceId,
    /// `None` when the file did not parse (its diagnostics say why).
    pub ast: Option<ast::File>,
    /// Stdlib files provide defaults that user files may override.
    pub is_stdlib: bool,
}

#[derive(Debug)]
pub struct Loaded {
    pub sources: SourceMap,
    pub files: Vec<LoadedFile>,
    pub diagnostics: Vec<Diagnostic>,
    /// Each import that resolved: the importing file, the `import`
    /// statement and the file it names.
    pub imports: Vec<(SourceId, Span, SourceId)>,
}

/// Parses kept between loads of one program, as an editor reloads it on
/// every change: a file whose name, id and text are unchanged is not parsed
/// again. Entries of files a load did not read are dropped. A load moves
/// the cached trees into its [`Loaded`] rather than copying them;
/// [`ParseCache::restore`] gives them back for the next load (a tree not
/// given back is parsed again).
#[derive(Default)]
pub struct ParseCache {
    files: BTreeMap<String, CachedParse>,
}

impl ParseCache {
    /// Returns the trees of a load's files to the cache.
    pub fn restore(&mut self, files: Vec<LoadedFile>, sources: &SourceMap) {
        for f in files {
            if let Some(c) = self.files.get_mut(sources.name(f.id)).filter(|c| c.id == f.id && c.ast.is_none()) {
                c.ast = f.ast;
            }
        }
    }
}

struct CachedParse {
    id: SourceId,
    text: String,
    /// Whether the text parsed (its tree may be lent out).
    parsed: bool,
    ast: Option<ast::File>,
    diagnostics: Vec<Diagnostic>,
    /// Read by the latest load.
    used: bool,
}

/// Why a program could not be loaded at all (exit code 2).
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub error: io::Error,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.path.display(), self.error)
    }
}

/// Lexical normalization (`a/./b/../c` → `a/c`), so one file has one name.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                // `..` cancels a name, never another `..` (or the root).
                let last = out.components().next_back();
                match last {
                    Some(Component::Normal(_)) => {
                        out.pop();
                    }
                    Some(Component::RootDir | Component::Prefix(_)) => {}
                    _ => out.push(".."),
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The entry files of a program: the file itself, or the directory's files.
pub fn entry_files(fs: &dyn FileSystem, path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    if fs.is_dir(path) {
        let mut files = fs.ztp_files(path).map_err(|error| LoadError { path: path.to_path_buf(), error })?;
        files.sort();
        if files.is_empty() {
            return Err(LoadError {
                path: path.to_path_buf(),
                error: io::Error::new(io::ErrorKind::NotFound, "no .ztp files in this directory"),
            });
        }
        Ok(files.iter().map(|f| normalize(f)).collect())
    } else {
        fs.read(path).map_err(|error| LoadError { path: path.to_path_buf(), error })?;
        Ok(vec![normalize(path)])
    }
}

/// A file's text added to the source map.
enum Registered {
    /// Already loaded.
    Known(SourceId),
    /// New, to be parsed.
    Text(SourceId),
    /// New, not UTF-8: it is not parsed.
    NotUtf8(SourceId, Diagnostic),
}

struct Loader<'a> {
    fs: &'a dyn FileSystem,
    sources: SourceMap,
    files: Vec<LoadedFile>,
    diagnostics: Vec<Diagnostic>,
    /// Import edges: (from, import statement span, to).
    edges: Vec<(SourceId, Span, SourceId)>,
    /// Where imports of standard input are resolved from.
    stdin_dir: Option<PathBuf>,
    /// An import that exists but cannot be read: the run stops (exit 2).
    io_error: Option<LoadError>,
    cache: Option<&'a mut ParseCache>,
}

/// Loads the program rooted at `path` (a file or a directory).
pub fn load(fs: &dyn FileSystem, path: &Path) -> Result<Loaded, LoadError> {
    load_with(fs, path, None)
}

/// [`load`], parsing only the files that changed since the last load with
/// the same `cache`.
pub fn load_cached(fs: &dyn FileSystem, path: &Path, cache: &mut ParseCache) -> Result<Loaded, LoadError> {
    for c in cache.files.values_mut() {
        c.used = false;
    }
    let loaded = load_with(fs, path, Some(&mut *cache));
    cache.files.retain(|_, c| c.used);
    loaded
}

fn load_with<'a>(fs: &'a dyn FileSystem, path: &Path, cache: Option<&'a mut ParseCache>) -> Result<Loaded, LoadError> {
    let entries = entry_files(fs, path)?;
    let mut l = Loader::new(fs, None);
    l.cache = cache;
    let mut texts = Vec::new();
    for e in &entries {
        let bytes = fs.read(e).map_err(|error| LoadError { path: e.clone(), error })?;
        texts.push((e.as_path(), bytes));
    }
    let queue = l.add_entries(texts);
    let loaded = l.finish(queue)?;
    Ok(loaded)
}

/// Loads a single in-memory text (stdin), with its imports resolved from `dir`.
pub fn load_text(fs: &dyn FileSystem, name: &str, text: String, dir: &Path) -> Result<Loaded, LoadError> {
    let mut l = Loader::new(fs, Some(dir.to_path_buf()));
    let id = l.sources.add(name, Origin::Stdin, text);
    l.parse(id, false, None);
    l.finish(vec![id])
}

impl<'a> Loader<'a> {
    fn new(fs: &'a dyn FileSystem, stdin_dir: Option<PathBuf>) -> Self {
        Loader {
            fs,
            sources: SourceMap::new(),
            files: Vec::new(),
            diagnostics: Vec::new(),
            edges: Vec::new(),
            stdin_dir,
            io_error: None,
            cache: None,
        }
    }

    /// Loads imports breadth-first from the entry files (each file once),
    /// then reports cycles.
    fn finish(mut self, mut queue: Vec<SourceId>) -> Result<Loaded, LoadError> {
        let mut next = 0;
        while let Some(&id) = queue.get(next) {
            next += 1;
            for target in self.imports_of(id) {
                if !queue.contains(&target) {
                    queue.push(target);
                }
            }
        }
        self.report_cycles();
        if let Some(e) = self.io_error {
            return Err(e);
        }
        Ok(Loaded { sources: self.sources, files: self.files, diagnostics: self.diagnostics, imports: self.edges })
    }

    fn add_file(&mut self, path: &Path, bytes: Vec<u8>) -> SourceId {
        match self.register(path, bytes) {
            Registered::Known(id) => id,
            Registered::Text(id) => {
                self.parse(id, false, None);
                id
            }
            Registered::NotUtf8(id, d) => {
                self.diagnostics.push(d);
                self.files.push(LoadedFile { id, ast: None, is_stdlib: false });
                id
            }
        }
    }

    /// The entry files, as [`Loader::add_file`] one after another would add
    /// them (files and diagnostics in the same order), but parsed together
    /// on every core ([`syntax::parse_all`]).
    fn add_entries(&mut self, entries: Vec<(&Path, Vec<u8>)>) -> Vec<SourceId> {
        let registered: Vec<Registered> = entries.into_iter().map(|(path, bytes)| self.register(path, bytes)).collect();
        let todo: Vec<SourceId> = registered
            .iter()
            .filter_map(|r| match r {
                Registered::Text(id) if !self.cached(*id) => Some(*id),
                _ => None,
            })
            .collect();
        let texts: Vec<(SourceId, &str)> = todo.iter().map(|id| (*id, self.sources.text(*id))).collect();
        let mut parsed: BTreeMap<SourceId, syntax::Parsed> =
            todo.iter().copied().zip(syntax::parse_all(&texts, false)).collect();
        registered
            .into_iter()
            .map(|r| match r {
                Registered::Known(id) => id,
                Registered::Text(id) => {
                    let p = parsed.remove(&id);
                    self.parse(id, false, p);
                    id
                }
                Registered::NotUtf8(id, d) => {
                    self.diagnostics.push(d);
                    self.files.push(LoadedFile { id, ast: None, is_stdlib: false });
                    id
                }
            })
            .collect()
    }

    /// Adds a file's text to the source map (once per file).
    fn register(&mut self, path: &Path, bytes: Vec<u8>) -> Registered {
        if let Some(id) = self.sources.find_file(path) {
            return Registered::Known(id);
        }
        let name = path.display().to_string();
        match String::from_utf8(bytes) {
            Ok(text) => Registered::Text(self.sources.add(name, Origin::File(path.to_path_buf()), text)),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let id = self.sources.add(name, Origin::File(path.to_path_buf()), text);
                let d = Diagnostic::new(
                    codes::NOT_UTF8,
                    "file is not valid UTF-8",
                    Span::new(id, at, at + '\u{FFFD}'.len_utf8()),
                    "invalid byte here",
                )
                .with_help("save the file as UTF-8");
                Registered::NotUtf8(id, d)
            }
        }
    }

    /// Whether the parse cache holds this file's tree (or its errors).
    fn cached(&self, id: SourceId) -> bool {
        let (text, name) = (self.sources.text(id), self.sources.name(id));
        self.cache.as_deref().is_some_and(|cache| {
            cache.files.get(name).is_some_and(|c| c.id == id && c.text == text && (c.ast.is_some() || !c.parsed))
        })
    }

    /// Parses one file (or takes `parsed`, its parse already done, or the
    /// cache's) and adds it with its diagnostics.
    fn parse(&mut self, id: SourceId, is_stdlib: bool, parsed: Option<syntax::Parsed>) {
        let text = self.sources.text(id);
        let name = self.sources.name(id);
        let parse = |parsed: Option<syntax::Parsed>| parsed.unwrap_or_else(|| syntax::parse_tree(id, text));
        if let Some(cache) = self.cache.as_deref_mut() {
            if let Some(c) =
                cache.files.get_mut(name).filter(|c| c.id == id && c.text == text && (c.ast.is_some() || !c.parsed))
            {
                c.used = true;
                self.diagnostics.extend(c.diagnostics.iter().cloned());
                self.files.push(LoadedFile { id, ast: c.ast.take(), is_stdlib });
                return;
            }
            let parsed = parse(parsed);
            cache.files.insert(
                name.to_string(),
                CachedParse {
                    id,
                    text: text.to_string(),
                    parsed: parsed.file.is_some(),
                    ast: None,
                    diagnostics: parsed.diagnostics.clone(),
                    used: true,
                },
            );
            self.diagnostics.extend(parsed.diagnostics);
            self.files.push(LoadedFile { id, ast: parsed.file, is_stdlib });
            return;
        }
        let parsed = parse(parsed);
        self.diagnostics.extend(parsed.diagnostics);
        self.files.push(LoadedFile { id, ast: parsed.file, is_stdlib });
    }

    /// Resolves the imports of one file, loading new files; returns targets.
    fn imports_of(&mut self, id: SourceId) -> Vec<SourceId> {
        let imports: Vec<ast::Import> = self
            .files
            .iter()
            .find(|f| f.id == id)
            .and_then(|f| f.ast.as_ref())
            .map(|a| {
                a.stmts
                    .iter()
                    .filter_map(|s| match s {
                        Stmt::Import(i) => Some(i.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Duplicates are judged by the file an import resolves to, so
        // `"shared"` and `"./shared.ztp"` are the same import.
        let mut seen: BTreeMap<SourceId, Span> = BTreeMap::new();
        let mut out = Vec::new();
        for imp in imports {
            let Some(target) = self.resolve_import(id, &imp) else { continue };
            if let Some(first) = seen.get(&target) {
                let name = self.sources.name(target).to_string();
                self.diagnostics.push(
                    Diagnostic::new(
                        codes::DUPLICATE_IMPORT,
                        format!("`{name}` is imported twice"),
                        imp.span,
                        "imported again here",
                    )
                    .with_secondary(*first, "first imported here")
                    .with_help("remove this import"),
                );
                continue;
            }
            seen.insert(target, imp.span);
            self.edges.push((id, imp.span, target));
            out.push(target);
        }
        out
    }

    fn resolve_import(&mut self, from: SourceId, imp: &ast::Import) -> Option<SourceId> {
        let path = imp.path.value.as_str();
        if path.trim().is_empty() {
            self.diagnostics.push(
                Diagnostic::new(codes::IMPORT_NOT_FOUND, "empty import path", imp.path.span, "nothing to import")
                    .with_help("name a stdlib module (`\"std/baseline\"`) or a file relative to this one"),
            );
            return None;
        }
        if let Some(module) = path.strip_prefix("std/") {
            if let Some(id) = self.sources.find_stdlib(path) {
                return Some(id);
            }
            let Some(text) = stdlib::module(module) else {
                let mut d = Diagnostic::new(
                    codes::IMPORT_NOT_FOUND,
                    format!("there is no stdlib module `{path}`"),
                    imp.path.span,
                    "unknown module",
                );
                d = match did_you_mean(module, stdlib::MODULES.iter().map(|(n, _)| *n)) {
                    Some(s) => d.with_help(format!("did you mean `std/{s}`?")),
                    None => d.with_help(format!(
                        "the stdlib modules are {}",
                        stdlib::MODULES.iter().map(|(n, _)| format!("`std/{n}`")).collect::<Vec<_>>().join(", ")
                    )),
                };
                self.diagnostics.push(d);
                return None;
            };
            let id = self.sources.add(format!("{path}.ztp"), Origin::Stdlib(path.to_string()), text);
            self.parse(id, true, None);
            return Some(id);
        }
        let base = match &self.sources.get(from).map(|f| f.origin.clone()) {
            Some(Origin::File(p)) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            _ => self.stdin_dir.clone().unwrap_or_default(),
        };
        if Path::new(path).is_absolute() {
            self.diagnostics.push(
                Diagnostic::new(
                    codes::IMPORT_NOT_FOUND,
                    format!("`{path}` is an absolute path"),
                    imp.path.span,
                    "absolute path",
                )
                .with_help("import local files by a path relative to the importing file, so the program can move"),
            );
            return None;
        }
        let as_written = normalize(&base.join(path));
        let with_ext = normalize(&base.join(format!("{path}.ztp")));
        let is_dir = as_written.as_os_str().is_empty() || self.fs.is_dir(&as_written);
        if is_dir && self.fs.read(&with_ext).is_err() {
            self.diagnostics.push(
                Diagnostic::new(
                    codes::IMPORT_NOT_FOUND,
                    format!("`{path}` is a directory"),
                    imp.path.span,
                    "not a file",
                )
                .with_help("import a `.ztp` file; a directory is a program of its own, checked with `ztp check DIR`"),
            );
            return None;
        }
        for c in [&as_written, &with_ext] {
            if let Some(id) = self.sources.find_file(c) {
                return Some(id);
            }
            if self.fs.is_dir(c) {
                continue;
            }
            match self.fs.read(c) {
                Ok(bytes) => return Some(self.add_file(c, bytes)),
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    self.io_error.get_or_insert(LoadError { path: c.clone(), error: e });
                    return None;
                }
                Err(_) => {}
            }
        }
        self.diagnostics.push(
            Diagnostic::new(
                codes::IMPORT_NOT_FOUND,
                format!("cannot find `{path}`"),
                imp.path.span,
                format!("looked for {} and {}", as_written.display(), with_ext.display()),
            )
            .with_help("local imports are relative to the importing file; stdlib modules start with `std/`"),
        );
        None
    }

    /// Reports each import cycle once, at the import that closes it.
    fn report_cycles(&mut self) {
        let mut adj: BTreeMap<SourceId, Vec<(Span, SourceId)>> = BTreeMap::new();
        for (from, span, to) in &self.edges {
            adj.entry(*from).or_default().push((*span, *to));
        }
        let mut state: BTreeMap<SourceId, u8> = BTreeMap::new(); // 1 = on the path, 2 = done
        let roots: Vec<SourceId> = self.files.iter().map(|f| f.id).collect();
        let mut found: Vec<Vec<(SourceId, Span)>> = Vec::new();
        for root in roots {
            if state.contains_key(&root) {
                continue;
            }
            state.insert(root, 1);
            // The work stack is the current path: (file, next edge, import that led here).
            let mut work: Vec<(SourceId, usize, Option<Span>)> = vec![(root, 0, None)];
            while let Some(top) = work.last_mut() {
                let (node, i) = (top.0, top.1);
                top.1 += 1;
                match adj.get(&node).and_then(|e| e.get(i)).copied() {
                    Some((span, to)) => match state.get(&to) {
                        Some(1) => {
                            let start = work.iter().position(|w| w.0 == to).unwrap_or(0);
                            let path = work.get(start..).unwrap_or(&[]);
                            // Each file on the cycle with the import it makes.
                            let chain = path
                                .iter()
                                .enumerate()
                                .map(|(k, w)| (w.0, path.get(k + 1).and_then(|n| n.2).unwrap_or(span)))
                                .collect();
                            found.push(chain);
                        }
                        Some(_) => {}
                        None => {
                            state.insert(to, 1);
                            work.push((to, 0, Some(span)));
                        }
                    },
                    None => {
                        state.insert(node, 2);
                        work.pop();
                    }
                }
            }
        }
        for chain in found {
            let Some(&(_, closing)) = chain.last() else { continue };
            let names: Vec<String> = chain.iter().map(|(n, _)| self.sources.name(*n).to_string()).collect();
            let first = names.first().cloned().unwrap_or_default();
            let mut d = Diagnostic::new(
                codes::IMPORT_CYCLE,
                format!("import cycle: {} -> {first}", names.join(" -> ")),
                closing,
                "this import closes the cycle",
            )
            .with_help(if chain.len() == 1 {
                "a file cannot import itself; remove this import"
            } else {
                "move what both files need into a third file that both import"
            });
            for (_, span) in chain.iter().rev().skip(1) {
                d = d.with_secondary(*span, "imported here");
            }
            self.diagnostics.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trees(l: &Loaded) -> Vec<(String, Option<ast::File>)> {
        l.files.iter().map(|f| (l.sources.name(f.id).to_string(), f.ast.clone())).collect()
    }

    #[test]
    fn a_cached_load_gives_the_trees_of_a_fresh_one() {
        let mut fs = MemoryFs::with(&[
            ("p/a.ztp", "import \"std/baseline\"\nnamespace a {\n  workload x { selector { app = \"x\" } }\n}\n"),
            ("p/b.ztp", "namespace b {\n  workload y { selector { app = \"y\" } }\n}\n"),
            ("p/c.ztp", "namespace c {\n"),
        ]);
        let dir = Path::new("p");
        let mut cache = ParseCache::default();
        let first = load_cached(&fs, dir, &mut cache).unwrap();
        assert_eq!(trees(&first), trees(&load(&fs, dir).unwrap()));
        assert_eq!(first.diagnostics, load(&fs, dir).unwrap().diagnostics);
        // The trees are lent out: given back, they are the next load's.
        assert!(cache.files.values().all(|c| c.ast.is_none()));
        cache.restore(first.files, &first.sources);
        assert!(cache.files.values().filter(|c| c.parsed).all(|c| c.ast.is_some()));
        let second = load_cached(&fs, dir, &mut cache).unwrap();
        assert_eq!(trees(&second), trees(&load(&fs, dir).unwrap()));
        // Not given back, or changed, a file is parsed again.
        fs.files.insert(PathBuf::from("p/b.ztp"), b"namespace b2 {}\n".to_vec());
        let third = load_cached(&fs, dir, &mut cache).unwrap();
        assert_eq!(trees(&third), trees(&load(&fs, dir).unwrap()));
        assert_eq!(third.diagnostics, load(&fs, dir).unwrap().diagnostics);
        // A file no load reads any more leaves the cache.
        fs.files.remove(Path::new("p/c.ztp"));
        cache.restore(third.files, &third.sources);
        let fourth = load_cached(&fs, dir, &mut cache).unwrap();
        assert_eq!(trees(&fourth), trees(&load(&fs, dir).unwrap()));
        assert!(!cache.files.keys().any(|k| k.ends_with("c.ztp")));
    }
}
