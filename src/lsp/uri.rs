//! `file:` URIs and paths, both ways: percent-decoding what clients send
//! and percent-encoding what the server sends back.

use lsp_types::Uri;
use std::path::{Path, PathBuf};

/// The path of a `file:` URI (`None` for other schemes or a host other
/// than the local one).
pub fn to_path(uri: &Uri) -> Option<PathBuf> {
    let rest = uri.as_str().strip_prefix("file://")?;
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return None;
    }
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let bytes = decode(path)?;
    let text = String::from_utf8(bytes).ok()?;
    Some(crate::resolve::load::normalize(Path::new(&text)))
}

fn decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

/// The `file:` URI of an absolute path.
pub fn from_path(path: &Path) -> Option<Uri> {
    let text = path.to_str()?;
    let mut out = String::from("file://");
    if !text.starts_with('/') {
        out.push('/');
    }
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let p = Path::new("/estate/a b/ç.ztp");
        let u = from_path(p).unwrap();
        assert_eq!(u.as_str(), "file:///estate/a%20b/%C3%A7.ztp");
        assert_eq!(to_path(&u).unwrap(), p);
        assert_eq!(to_path(&"file://localhost/x/./y.ztp".parse().unwrap()).unwrap(), Path::new("/x/y.ztp"));
        assert_eq!(to_path(&"untitled:Untitled-1".parse().unwrap()), None);
    }
}
