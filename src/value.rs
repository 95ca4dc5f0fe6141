//! Checked value types: the values of a program as written, parsed and
//! validated — ports, CIDRs, DNS names and patterns (Cilium's rules, see
//! DOMAIN.md), DNS-1123 names, trust domains, labels, HTTP methods, paths
//! and headers. Each parser returns a typed value or a diagnostic; `resolve`
//! calls them while it builds the HIR, and the HIR, the IR, the backends and
//! the verifier use the types.

use crate::diag::{Diagnostic, codes};
use crate::source::Span;
use std::fmt;
use std::net::IpAddr;

// ------------------------------------------------------------------ CIDRs

/// A canonical CIDR block (no host bits set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    fn max_prefix(addr: IpAddr) -> u8 {
        if addr.is_ipv4() { 32 } else { 128 }
    }

    fn bits(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn mask(addr: IpAddr, prefix: u8) -> u128 {
        let width = u32::from(Self::max_prefix(addr));
        let host = width.saturating_sub(u32::from(prefix));
        let all: u128 = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
        if host >= 128 { 0 } else { all & !((1u128 << host).wrapping_sub(1)) }
    }

    fn from_bits(like: IpAddr, bits: u128) -> IpAddr {
        match like {
            IpAddr::V4(_) => IpAddr::V4(u32::try_from(bits).unwrap_or(0).into()),
            IpAddr::V6(_) => IpAddr::V6(bits.into()),
        }
    }

    /// Whether `other` lies inside this block (same family, longer or equal prefix).
    pub fn contains(&self, other: &Cidr) -> bool {
        self.addr.is_ipv4() == other.addr.is_ipv4()
            && other.prefix >= self.prefix
            && Self::bits(other.addr) & Self::mask(self.addr, self.prefix) == Self::bits(self.addr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses `addr/prefix`, requiring the canonical form (Z0408, Z0409, Z0421).
pub fn parse_cidr(text: &str, span: Span) -> Result<Cidr, Diagnostic> {
    let Some((addr_text, prefix_text)) = text.split_once('/') else {
        let port_meant =
            text.rsplit_once(':').filter(|(a, p)| a.parse::<std::net::Ipv6Addr>().is_ok() && p.parse::<u16>().is_ok());
        let suggestion = match (text.parse::<IpAddr>(), port_meant) {
            (Ok(IpAddr::V6(_)), Some((addr, port))) => format!(
                "write `{text}/128` for this one address; if `:{port}` is a port, write `{addr}/128:{port}` (the port follows the prefix)"
            ),
            (Ok(IpAddr::V4(_)), _) => format!("write `{text}/32` for this one address"),
            (Ok(IpAddr::V6(_)), None) => format!("write `{text}/128` for this one address"),
            (Err(_), _) => "a CIDR is an address and a prefix length, such as `10.0.0.0/8`".into(),
        };
        return Err(Diagnostic::new(
            codes::CIDR_PREFIX_MISSING,
            format!("`{text}` has no prefix length"),
            span,
            "missing `/<prefix>`",
        )
        .with_help(suggestion));
    };
    let bad = |why: String| {
        Diagnostic::new(codes::BAD_CIDR, format!("`{text}` is not a valid CIDR"), span, why)
            .with_help("a CIDR is an address and a prefix length, such as `10.0.0.0/8` or `fd00::/8`")
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| bad(format!("`{addr_text}` is not an IP address")))?;
    let prefix: u8 = prefix_text
        .parse()
        .ok()
        .filter(|p| *p <= Cidr::max_prefix(addr))
        .ok_or_else(|| bad(format!("prefix length must be 0 to {}", Cidr::max_prefix(addr))))?;
    let masked = Cidr::from_bits(addr, Cidr::bits(addr) & Cidr::mask(addr, prefix));
    let canonical = Cidr { addr: masked, prefix };
    if masked != addr || canonical.to_string() != text {
        let why = if masked != addr { "host bits are set" } else { "not written in canonical form" };
        return Err(Diagnostic::new(codes::NON_CANONICAL_CIDR, format!("`{text}` is not a canonical CIDR"), span, why)
            .with_help(format!("write `{canonical}`")));
    }
    Ok(canonical)
}

// -------------------------------------------------------------- DNS names

/// An external DNS name (`api.github.com`) or pattern (`*.github.com`,
/// `**.github.com`), as Cilium's `toFQDNs` takes it. Stored lower-case,
/// without a trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DnsName {
    Name(String),
    Pattern(String),
}

impl DnsName {
    pub fn as_str(&self) -> &str {
        match self {
            DnsName::Name(s) | DnsName::Pattern(s) => s,
        }
    }

    pub fn is_pattern(&self) -> bool {
        matches!(self, DnsName::Pattern(_))
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Validates a DNS name or pattern with Cilium's rules (`matchName`
/// `^([-a-zA-Z0-9_]+[.]?)+$`, `matchPattern` the same with `*`, ≤ 255
/// characters) plus what DNS itself requires (labels of 1–63 characters).
/// `**` is only meaningful as the whole leftmost label.
pub fn parse_dns_name(text: &str, span: Span) -> Result<DnsName, Diagnostic> {
    let pattern = text.contains('*');
    let code = if pattern { codes::BAD_FQDN_PATTERN } else { codes::BAD_FQDN };
    let what = if pattern { "DNS name pattern" } else { "DNS name" };
    let bad = |why: String, help: &str| {
        Diagnostic::new(code, format!("`{text}` is not a valid {what}"), span, why).with_help(help.to_string())
    };
    let help = if pattern {
        "a pattern is a DNS name where `*` stands for part of one label, e.g. `*.github.com`; `**.` as the first label matches any depth"
    } else {
        "a DNS name is labels of letters, digits, `-` and `_`, separated by dots, e.g. `api.github.com`"
    };
    if text.is_empty() {
        return Err(bad("empty name".into(), help));
    }
    if text.parse::<IpAddr>().is_ok() {
        return Err(Diagnostic::new(code, format!("`{text}` is an IP address, not a DNS name"), span, "IP address")
            .with_help(format!(
                "write addresses as CIDRs, without quotes: `{text}/{}:443`",
                if text.contains(':') { 128 } else { 32 }
            )));
    }
    if text.contains("://") || text.contains('/') || text.contains(':') {
        // Suggest the host part alone.
        let host = text.split_once("://").map_or(text, |(_, rest)| rest);
        let host = host.split(['/', ':']).next().unwrap_or(host);
        let help = if host.is_empty() {
            "write only the host name; put the port after the string: `\"api.github.com\":443`".to_string()
        } else {
            format!("write only the host name; put the port after the string: `\"{host}\":443`")
        };
        return Err(bad("a DNS name has no scheme, path or port".into(), &help));
    }
    if text.len() > 255 {
        return Err(bad(format!("{} characters, at most 255 are allowed", text.len()), help));
    }
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    for (i, label) in trimmed.split('.').enumerate() {
        if label.is_empty() {
            return Err(bad("empty label (two dots in a row, or a leading dot)".into(), help));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*'))) {
            return Err(bad(format!("`{c}` is not allowed in a DNS name"), help));
        }
        if label.contains("**") && !(i == 0 && label == "**") {
            return Err(bad(
                "`**` must be the whole first label (`**.example.com`)".into(),
                "use `*` inside a label, or `**.` as the first label",
            ));
        }
        if !label.contains('*') && label.len() > 63 {
            return Err(bad(format!("label `{label}` is longer than 63 characters"), help));
        }
    }
    let lower = trimmed.to_ascii_lowercase();
    Ok(if pattern { DnsName::Pattern(lower) } else { DnsName::Name(lower) })
}

/// A Gateway API hostname (listener `hostname`, route `hostnames`): a DNS
/// name of lower-case letters, digits, `-` and `.`, or one with a leading
/// `*.` label; never an IP address.
pub fn parse_hostname(text: &str, span: Span) -> Result<DnsName, Diagnostic> {
    let pattern = text.starts_with("*.");
    let rest = text.strip_prefix("*.").unwrap_or(text);
    let code = if text.contains('*') { codes::BAD_FQDN_PATTERN } else { codes::BAD_FQDN };
    let bad = |why: &str| {
        Diagnostic::new(code, format!("`{text}` is not a valid gateway hostname"), span, why.to_string()).with_help(
            "Gateway API hostnames are an exact name (`shop.example.com`) or one leading wildcard label (`*.example.com`)",
        )
    };
    if text.parse::<IpAddr>().is_ok() {
        return Err(bad("an IP address is not a hostname"));
    }
    if rest.contains('*') {
        return Err(bad("`*` is only allowed as the whole first label, `*.`"));
    }
    if rest.len() > 253 || !is_dns1123_subdomain(&rest.to_ascii_lowercase()) || rest.contains('_') {
        return Err(bad("not a lower-case DNS name"));
    }
    let lower = text.to_ascii_lowercase();
    Ok(if pattern { DnsName::Pattern(lower) } else { DnsName::Name(lower) })
}

/// Whether a listener's and a route's hostnames intersect, as Gateway API
/// decides which listeners a route attaches to. A leading `*.` is a suffix
/// match over one label or more: `*.example.com` matches `a.example.com`
/// and `a.b.example.com` but not `example.com`. Two wildcards intersect
/// when one's suffix lies within the other's (`*.example.com` and
/// `*.shop.example.com`).
pub fn hostnames_intersect(a: &DnsName, b: &DnsName) -> bool {
    let suffix = |p: &str| p.strip_prefix('*').map(str::to_string).unwrap_or_else(|| format!(".{p}"));
    let under = |name: &str, wildcard: &str| name.ends_with(&suffix(wildcard));
    match (a, b) {
        (DnsName::Name(x), DnsName::Name(y)) => x == y,
        (DnsName::Name(x), DnsName::Pattern(p)) | (DnsName::Pattern(p), DnsName::Name(x)) => under(x, p),
        (DnsName::Pattern(p), DnsName::Pattern(q)) => p == q || under(p, q) || under(q, p),
    }
}

// ---------------------------------------------------------- names, labels

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(|c| *c != b'-')
        && b.last().is_some_and(|c| *c != b'-')
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// A name that becomes a Kubernetes object or label name must be a DNS-1123
/// label: lower-case letters, digits and `-`, at most 63 characters (Z0411).
pub fn check_dns1123_label(name: &str, span: Span, what: &str) -> Option<Diagnostic> {
    if is_dns1123_label(name) {
        return None;
    }
    let why = if name.len() > 63 {
        format!("{} characters, at most 63 are allowed", name.len())
    } else if name.chars().any(|c| c.is_ascii_uppercase()) {
        "upper-case letters are not allowed".into()
    } else if name.contains('_') {
        "`_` is not allowed".into()
    } else {
        "must start and end with a letter or digit".into()
    };
    let fixed: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == '_' { '-' } else { c })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(63)
        .collect();
    let mut d =
        Diagnostic::new(codes::BAD_DNS1123, format!("{what} `{name}` is not a valid DNS-1123 label"), span, why)
            .with_note(
                "Kubernetes names are lower-case letters, digits and `-`, starting and ending with a letter or digit",
            );
    if is_dns1123_label(&fixed) {
        d = d.with_help(format!("write `{fixed}`"));
    }
    Some(d)
}

/// Service account names are DNS-1123 subdomains (Z0423).
pub fn check_service_account(name: &str, span: Span) -> Option<Diagnostic> {
    (!is_dns1123_subdomain(name)).then(|| {
        Diagnostic::new(
            codes::BAD_SERVICE_ACCOUNT,
            format!("`{name}` is not a valid service account name"),
            span,
            "not a DNS-1123 subdomain",
        )
        .with_help("service account names are lower-case letters, digits, `-` and `.`, at most 253 characters")
    })
}

/// Secret names are DNS-1123 subdomains (Z0423).
pub fn check_secret_name(name: &str, span: Span) -> Option<Diagnostic> {
    (!is_dns1123_subdomain(name)).then(|| {
        Diagnostic::new(
            codes::BAD_SERVICE_ACCOUNT,
            format!("`{name}` is not a valid secret name"),
            span,
            "not a DNS-1123 subdomain",
        )
        .with_help("secret names are lower-case letters, digits, `-` and `.`, at most 253 characters")
    })
}

/// Trust domains as Istio writes principals: no `spiffe://`, lower-case
/// letters, digits, `.`, `-`, `_` (Z0413).
pub fn check_trust_domain(td: &str, span: Span) -> Option<Diagnostic> {
    let bad =
        |why: &str| Diagnostic::new(codes::BAD_TRUST_DOMAIN, format!("`{td}` is not a valid trust domain"), span, why);
    if let Some(rest) = td.strip_prefix("spiffe://") {
        let fix = if rest.is_empty() {
            "write the trust domain alone, e.g. `cluster.local`".to_string()
        } else {
            format!("write `{rest}`")
        };
        return Some(
            bad("a trust domain has no `spiffe://` prefix")
                .with_help(format!("{fix}; principals are written `<trust domain>/ns/<ns>/sa/<sa>`")),
        );
    }
    if td.is_empty() || td.len() > 255 {
        return Some(bad("must be 1 to 255 characters").with_help("the default is `cluster.local`"));
    }
    if td.contains(':') {
        return Some(bad("a trust domain has no port").with_help("remove the `:port`"));
    }
    if let Some(c) =
        td.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
    {
        return Some(
            bad(&format!("`{c}` is not allowed"))
                .with_help("trust domains are lower-case letters, digits, `.`, `-` and `_`, e.g. `cluster.local`"),
        );
    }
    if td.starts_with('.') || td.ends_with('.') || td.contains("..") {
        return Some(bad("empty label").with_help("the default is `cluster.local`"));
    }
    None
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Kubernetes label keys (`[prefix/]name`) and values (Z0414).
pub fn check_label(key: &str, key_span: Span, value: &str, value_span: Span) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if !is_label_name(name) || prefix.is_some_and(|p| !is_dns1123_subdomain(p)) {
        out.push(
            Diagnostic::new(codes::BAD_LABEL, format!("`{key}` is not a valid label key"), key_span, "invalid label key")
                .with_help("a label key is an optional DNS subdomain prefix and `/`, then up to 63 letters, digits, `-`, `_` or `.`, e.g. `app.kubernetes.io/name`"),
        );
    }
    if !(value.is_empty() || is_label_name(value)) {
        out.push(
            Diagnostic::new(codes::BAD_LABEL, format!("`{value}` is not a valid label value"), value_span, "invalid label value")
                .with_help("a label value is up to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"),
        );
    }
    out
}

// ------------------------------------------------------------------- ports

/// A port number 1–65535 (Z0402).
pub fn parse_port(text: &str, span: Span) -> Result<u16, Diagnostic> {
    match text.parse::<u64>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(u16::try_from(n).unwrap_or(0)),
        _ => Err(Diagnostic::new(codes::PORT_RANGE, format!("port {text} is out of range"), span, "not in 1–65535")
            .with_help("ports are numbers from 1 to 65535")),
    }
}

// -------------------------------------------------------------------- HTTP

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

pub const HTTP_METHODS: &[(&str, HttpMethod)] = &[
    ("GET", HttpMethod::Get),
    ("HEAD", HttpMethod::Head),
    ("POST", HttpMethod::Post),
    ("PUT", HttpMethod::Put),
    ("DELETE", HttpMethod::Delete),
    ("CONNECT", HttpMethod::Connect),
    ("OPTIONS", HttpMethod::Options),
    ("TRACE", HttpMethod::Trace),
    ("PATCH", HttpMethod::Patch),
];

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        HTTP_METHODS.iter().find(|(_, m)| *m == self).map_or("GET", |(s, _)| s)
    }
}

/// An HTTP method, upper-case (Z0405).
pub fn parse_method(text: &str, span: Span) -> Result<HttpMethod, Diagnostic> {
    if let Some((_, m)) = HTTP_METHODS.iter().find(|(s, _)| *s == text) {
        return Ok(*m);
    }
    let mut d = Diagnostic::new(codes::BAD_METHOD, format!("`{text}` is not an HTTP method"), span, "unknown method");
    let upper = text.to_ascii_uppercase();
    if HTTP_METHODS.iter().any(|(s, _)| *s == upper) {
        d = d.with_help(format!("methods are upper-case: write `{upper}`"));
    } else if let Some(s) = crate::diag::did_you_mean(&upper, HTTP_METHODS.iter().map(|(s, _)| *s)) {
        d = d.with_help(format!("did you mean `{s}`?"));
    } else {
        d = d.with_help("the methods are GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE and PATCH");
    }
    Err(d)
}

/// An HTTP path as Istio matches it: exact (`/health`), prefix (`/api/*`),
/// suffix (`*.png`) or `*` (Z0415).
pub fn check_path(path: &str, span: Span) -> Option<Diagnostic> {
    let bad = |why: &str, help: &str| {
        Some(
            Diagnostic::new(codes::BAD_PATH, format!("`{path}` is not a valid HTTP path"), span, why)
                .with_help(help.to_string()),
        )
    };
    let shape = "paths are exact (`/health`), prefixes (`/api/*`), suffixes (`*.png`) or `*`";
    if path == "*" {
        return None;
    }
    if path.is_empty() {
        return bad("empty path", shape);
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("paths cannot contain spaces or control characters", "percent-encode them (`%20`)");
    }
    if path.contains('?') || path.contains('#') {
        return bad("paths do not include a query or fragment", "match only the path, up to `?`");
    }
    let inner = path.strip_prefix('*').unwrap_or(path);
    let inner = inner.strip_suffix('*').unwrap_or(inner);
    if inner.contains('*') || (path.starts_with('*') && path.ends_with('*') && path.len() > 1) {
        return bad("`*` may only start or end a path", shape);
    }
    if !path.starts_with('/') && !path.starts_with('*') {
        return bad("must start with `/`", &format!("write `/{path}`"));
    }
    None
}

/// Header names are HTTP tokens (stored lower-case); values are visible
/// ASCII (Z0416).
pub fn check_header(name: &str, name_span: Span, value: &str, value_span: Span) -> Option<Diagnostic> {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.starts_with(':') {
        return Some(
            Diagnostic::new(
                codes::BAD_HEADER,
                format!("`{name}` is an HTTP/2 pseudo-header"),
                name_span,
                "pseudo-header",
            )
            .with_help("match methods with `methods`, paths with `paths` and hosts with the gateway's `hostname`"),
        );
    }
    if name.is_empty() || !name.chars().all(tchar) {
        return Some(
            Diagnostic::new(
                codes::BAD_HEADER,
                format!("`{name}` is not a valid header name"),
                name_span,
                "invalid header name",
            )
            .with_help("header names are letters, digits and `-` (and a few other symbols), e.g. `x-request-id`"),
        );
    }
    if name.eq_ignore_ascii_case("host") {
        return Some(
            Diagnostic::new(
                codes::BAD_HEADER,
                format!("header `{name}` cannot be matched here"),
                name_span,
                "the host is not a header rule",
            )
            .with_help("match hosts with the gateway's `hostname` or a route's `hostnames` instead"),
        );
    }
    if value.contains('*') {
        return Some(
            Diagnostic::new(codes::BAD_HEADER, format!("header value for `{name}` contains `*`"), value_span, "a wildcard")
                .with_note("header values are matched exactly; Istio would read `*` as a wildcard (any value, or a prefix or suffix)")
                .with_help("write the exact value the header must have"),
        );
    }
    if value.chars().any(|c| !(c == ' ' || c == '\t' || c.is_ascii_graphic())) {
        return Some(
            Diagnostic::new(
                codes::BAD_HEADER,
                format!("header value for `{name}` has characters HTTP does not allow"),
                value_span,
                "invalid header value",
            )
            .with_help("header values are visible ASCII characters and spaces"),
        );
    }
    None
}

/// `major.minor` of a version string such as `"1.18"` or `"1.18.3"`.
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    if parts.all(|p| p.parse::<u32>().is_ok()) { Some((major, minor)) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceId;

    fn sp() -> Span {
        Span::new(SourceId(0), 0, 1)
    }

    fn code(r: Result<impl fmt::Debug, Diagnostic>) -> &'static str {
        r.err().map_or("ok", |d| d.code.as_str())
    }

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.0.0.0/8", sp()).unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(code(parse_cidr("10.0.0.1/8", sp())), "Z0409");
        assert_eq!(code(parse_cidr("10.0.0.0/33", sp())), "Z0408");
        assert_eq!(code(parse_cidr("10.0.0.256/32", sp())), "Z0408");
        assert_eq!(code(parse_cidr("10.0.0.1", sp())), "Z0421");
        assert_eq!(code(parse_cidr("fd00::/8", sp())), "ok");
        assert_eq!(code(parse_cidr("fd00:0::/8", sp())), "Z0409");
        assert_eq!(code(parse_cidr("0.0.0.0/0", sp())), "ok");
        assert_eq!(code(parse_cidr("::/0", sp())), "ok");
        let big = parse_cidr("10.0.0.0/8", sp()).unwrap();
        assert!(big.contains(&parse_cidr("10.1.0.0/16", sp()).unwrap()));
        assert!(!big.contains(&parse_cidr("11.0.0.0/16", sp()).unwrap()));
        assert!(!big.contains(&parse_cidr("0.0.0.0/0", sp()).unwrap()));
        assert!(!big.contains(&parse_cidr("fd00::/8", sp()).unwrap()));
    }

    #[test]
    fn hostname_intersection_follows_gateway_api() {
        let h = |s: &str| parse_hostname(s, sp()).unwrap();
        let meet = |a: &str, b: &str| hostnames_intersect(&h(a), &h(b)) && hostnames_intersect(&h(b), &h(a));
        let apart = |a: &str, b: &str| !hostnames_intersect(&h(a), &h(b)) && !hostnames_intersect(&h(b), &h(a));
        // The examples of the HTTPRoute `hostnames` field.
        assert!(meet("test.example.com", "test.example.com"));
        assert!(meet("test.example.com", "*.example.com"));
        assert!(meet("*.example.com", "*.example.com"));
        assert!(meet("*.example.com", "foo.test.example.com"));
        assert!(apart("*.example.com", "example.com"));
        assert!(apart("*.example.com", "test.example.net"));
        // Wildcards within wildcards, either way round.
        assert!(meet("*.example.com", "*.foo.example.com"));
        assert!(apart("*.example.com", "*.example.net"));
        // Suffixes match on label boundaries only.
        assert!(apart("*.example.com", "badexample.com"));
        assert!(apart("*.example.com", "*.badexample.com"));
        assert!(apart("shop.example.com", "www.shop.example.com"));
    }

    #[test]
    fn dns_names() {
        assert_eq!(parse_dns_name("API.github.com.", sp()).unwrap(), DnsName::Name("api.github.com".into()));
        assert!(parse_dns_name("*.github.com", sp()).unwrap().is_pattern());
        assert_eq!(code(parse_dns_name("**.github.com", sp())), "ok");
        assert_eq!(code(parse_dns_name("a.**.github.com", sp())), "Z0407");
        assert_eq!(code(parse_dns_name("a..b", sp())), "Z0406");
        assert_eq!(code(parse_dns_name("https://a.b", sp())), "Z0406");
        assert_eq!(code(parse_dns_name("a b", sp())), "Z0406");
        assert_eq!(code(parse_dns_name(&"a".repeat(64), sp())), "Z0406");
    }

    #[test]
    fn names_paths_methods() {
        assert!(check_dns1123_label("hello-app", sp(), "workload").is_none());
        let d = check_dns1123_label("Hello_App", sp(), "workload").unwrap();
        assert_eq!(d.help, vec!["write `hello-app`"]);
        assert!(check_trust_domain("cluster.local", sp()).is_none());
        assert!(check_trust_domain("spiffe://cluster.local", sp()).is_some());
        assert!(check_path("/api/*", sp()).is_none());
        assert!(check_path("*.png", sp()).is_none());
        assert!(check_path("/a*b", sp()).is_some());
        assert!(check_path("health", sp()).is_some());
        assert_eq!(code(parse_method("get", sp())), "Z0405");
        assert_eq!(code(parse_port("0", sp())), "Z0402");
        assert_eq!(code(parse_port("65536", sp())), "Z0402");
        assert_eq!(parse_version("1.19.2"), Some((1, 19)));
        assert!(check_label("app.kubernetes.io/name", sp(), "x", sp()).is_empty());
        assert_eq!(check_label("-bad", sp(), "a b", sp()).len(), 2);
    }
}
