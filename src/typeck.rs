//! Value types and the rules that need the whole program.
//!
//! The first half parses and validates values as written — ports, CIDRs, DNS
//! names and patterns (Cilium's rules, see DOMAIN.md), DNS-1123 names, trust
//! domains, labels, HTTP methods, paths and headers — returning a typed value
//! or a diagnostic; `resolve` calls these while it builds the HIR. The second
//! half, [`check`], runs over the finished HIR for rules that relate several
//! items: `http` rules on ports that do not speak HTTP, `world` toward
//! anything but a gateway, `except` ranges outside their CIDR, duplicate port
//! numbers, routes to non-HTTP ports, route hostnames no listener accepts,
//! duplicate flows, workloads whose selectors overlap.

use crate::diag::{Diagnostic, codes};
use crate::hir::*;
use crate::source::Span;
use std::collections::{BTreeMap, BTreeSet};
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

// ------------------------------------------------------- program-level rules

/// The rules that need the whole resolved program.
pub fn check(p: &Program) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for ns in &p.namespaces {
        overlapping_selectors(ns, &mut out);
        for w in &ns.workloads {
            // TCP and UDP may share a number (DNS does); nothing else may.
            let ports = w.ports.iter().map(|port| {
                let udp = port.protocol.value == Protocol::Udp;
                ((port.number.value, udp), &port.number, &port.name.value)
            });
            duplicate_numbers(ports, "port", "give each port its own number, or merge the two ports", &mut out);
        }
        for g in &ns.gateways {
            // Listeners may share a port when their hostnames differ.
            let listeners = g
                .listeners
                .iter()
                .map(|l| ((l.port.value, l.hostname.as_ref().map(|h| h.value.to_string())), &l.port, &l.name.value));
            duplicate_numbers(listeners, "listener port", "listeners on one port need different `hostname`s", &mut out);
            listener_protocols(g, &mut out);
            for r in &g.routes {
                route_protocol(p, r, &mut out);
                route_hostnames(g, r, &mut out);
            }
        }
    }
    let mut seen: BTreeMap<String, Span> = BTreeMap::new();
    let mut flows: Vec<&Flow> = p.flows.iter().collect();
    flows.sort_by_key(|f| (f.span.source, f.span.lo));
    for f in flows {
        world_source(p, &f.src, &f.dst, &mut out);
        except_inside(&f.src.value, &f.dst.value, &mut out);
        if let Some(http) = &f.http {
            http_rules(p, http, &f.dst, &mut out);
        }
        self_flow(f, &mut out);
        let key =
            format!("{}|{}|{:?}", source_key(&f.src.value), dest_key(&f.dst.value), f.http.as_ref().map(http_key));
        if let Some(first) = seen.get(&key) {
            out.push(
                Diagnostic::new(codes::DUPLICATE_FLOW, "this flow is declared twice", f.span, "declared again here")
                    .with_secondary(*first, "first declared here")
                    .with_help("remove one of them"),
            );
        } else {
            seen.insert(key, f.span);
        }
    }
    for e in &p.expects {
        except_inside(&e.src.value, &e.dst.value, &mut out);
    }
    out
}

/// A selector label as written in `.ztp`: `app = "api"`, with keys that
/// are not plain names quoted.
fn label_text(key: &str, value: &str) -> String {
    let plain = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain { format!("{key} = \"{value}\"") } else { format!("\"{key}\" = \"{value}\"") }
}

/// Two workloads of a namespace whose selectors are equal, or where one's
/// labels are a subset of the other's: the policies of the broader one (Cilium
/// and ztunnel select pods by these labels) apply to the other's pods too.
/// Each workload is filed under its rarest label, so a workload is compared
/// only with those that could be a subset of it, not with every other.
fn overlapping_selectors(ns: &Namespace, out: &mut Vec<Diagnostic>) {
    type Labels<'a> = BTreeSet<(&'a str, &'a str)>;
    let sets: Vec<Labels<'_>> = ns
        .workloads
        .iter()
        .map(|w| w.selector.iter().map(|(k, v)| (k.value.as_str(), v.value.as_str())).collect())
        .collect();
    let mut count: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for l in sets.iter().flatten() {
        *count.entry(*l).or_default() += 1;
    }
    let mut by_rarest: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    let mut first_with: BTreeMap<&Labels<'_>, usize> = BTreeMap::new();
    for (i, s) in sets.iter().enumerate() {
        // An empty selector is an error of its own (Z0424).
        if let Some(rarest) = s.iter().min_by_key(|l| (count.get(*l).copied().unwrap_or(0), **l)) {
            by_rarest.entry(*rarest).or_default().push(i);
            first_with.entry(s).or_insert(i);
        }
    }
    let at = |w: &Workload| w.selector_span.or(w.name.span).unwrap_or(w.span);
    let by_default = |w: &Workload| match (w.selector_span, w.selector.first()) {
        (None, Some((k, v))) => format!(" (by default, `{}`)", label_text(&k.value, &v.value)),
        _ => String::new(),
    };
    for (b, sb) in sets.iter().enumerate() {
        let Some(wb) = ns.workloads.get(b) else { continue };
        let mut candidates: BTreeSet<usize> = BTreeSet::new();
        for l in sb {
            candidates.extend(by_rarest.get(l).into_iter().flatten().copied().filter(|a| *a != b));
        }
        for a in candidates {
            let (Some(sa), Some(wa)) = (sets.get(a), ns.workloads.get(a)) else { continue };
            if !sa.is_subset(sb) {
                continue;
            }
            let shared: Vec<String> = sa.iter().map(|(k, v)| label_text(k, v)).collect();
            let shared = shared.join(", ");
            let d = if sa.len() == sb.len() {
                // Equal selectors: each later workload against the first.
                if first_with.get(sb) != Some(&a) {
                    continue;
                }
                Diagnostic::new(
                    codes::OVERLAPPING_SELECTORS,
                    format!("workloads `{}` and `{}` select the same pods", wa.name.value, wb.name.value),
                    at(wb),
                    format!("the same labels as `{}`", wa.name.value),
                )
                .with_secondary(at(wa), format!("`{}` selects these pods{}", wa.name.value, by_default(wa)))
                .with_note(format!(
                    "Cilium and ztunnel select pods by their labels, here `{shared}`, so every policy of either workload applies to the pods of both"
                ))
                .with_help("give each workload a label that the other's pods do not carry")
            } else {
                Diagnostic::new(
                    codes::OVERLAPPING_SELECTORS,
                    format!("the selector of `{}` also selects the pods of `{}`", wa.name.value, wb.name.value),
                    at(wa),
                    format!("selects `{}`'s pods too{}", wb.name.value, by_default(wa)),
                )
                .with_secondary(at(wb), format!("`{}`'s pods carry these labels too", wb.name.value))
                .with_note(format!(
                    "every pod of `{}` carries `{shared}`, the whole selector of `{}`, so every policy of `{}` applies to it as well",
                    wb.name.value, wa.name.value, wa.name.value
                ))
                .with_help(format!(
                    "add a label to `{}`'s selector that `{}`'s pods do not carry",
                    wa.name.value, wb.name.value
                ))
            };
            out.push(d);
        }
    }
}

fn http_key(h: &HttpMatch) -> String {
    let methods: Vec<_> = h.methods.iter().map(|m| m.value).collect();
    let paths: Vec<_> = h.paths.iter().map(|m| &m.value).collect();
    let headers: Vec<_> = h.headers.iter().map(|(k, v)| (&k.value, &v.value)).collect();
    format!("{methods:?}{paths:?}{headers:?}")
}

/// What a flow means, without spans: two flows with the same key are one.
fn source_key(s: &Source) -> String {
    match s {
        Source::Workload(w) => format!("{w:?}"),
        Source::Gateway(g) => format!("{g:?}"),
        Source::Namespace { ns, except } => {
            let mut e = except.clone();
            e.sort();
            format!("{ns:?}-{e:?}")
        }
        Source::World => "world".into(),
        Source::Cidr(set) => cidr_key(set),
    }
}

fn dest_key(d: &Dest) -> String {
    match d {
        Dest::Workload { id, ports } => {
            let mut p = ports.clone();
            p.sort();
            format!("{id:?}{p:?}")
        }
        Dest::Gateway { id, listeners } => {
            let mut l = listeners.clone();
            l.sort();
            format!("{id:?}{l:?}")
        }
        Dest::Fqdn { name, port } => format!("{}:{:?}", name.value, port.as_ref().map(|p| p.value)),
        Dest::Cidr { set, port } => format!("{}:{:?}", cidr_key(set), port.as_ref().map(|p| p.value)),
    }
}

fn cidr_key(set: &CidrSet) -> String {
    let mut e: Vec<String> = set.except.iter().map(|c| c.value.to_string()).collect();
    e.sort();
    format!("{}-{e:?}", set.cidr.value)
}

fn duplicate_numbers<'a, K: Ord>(
    items: impl Iterator<Item = (K, &'a Spanned<u16>, &'a String)>,
    what: &str,
    help: &str,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen: BTreeMap<K, (&'a Spanned<u16>, &'a String)> = BTreeMap::new();
    for (key, num, name) in items {
        if let Some((first, first_name)) = seen.get(&key) {
            if let (Some(span), Some(first_span)) = (num.span, first.span) {
                out.push(
                    Diagnostic::new(
                        codes::DUPLICATE_PORT_NUMBER,
                        format!("{what} {} is used by both `{first_name}` and `{name}`", num.value),
                        span,
                        "used again here",
                    )
                    .with_secondary(first_span, "first used here")
                    .with_help(help.to_string()),
                );
            }
        } else {
            seen.insert(key, (num, name));
        }
    }
}

/// Listeners that share a port must share a protocol (Gateway API reports a
/// `ProtocolConflict` otherwise).
fn listener_protocols(g: &Gateway, out: &mut Vec<Diagnostic>) {
    let mut first: BTreeMap<u16, &Listener> = BTreeMap::new();
    for l in &g.listeners {
        match first.get(&l.port.value) {
            Some(f) if f.protocol.value != l.protocol.value => {
                if let (Some(s), Some(fs)) = (l.port.span, f.port.span) {
                    out.push(
                        Diagnostic::new(
                            codes::DUPLICATE_PORT_NUMBER,
                            format!(
                                "listeners `{}` and `{}` share port {} with different protocols",
                                f.name.value, l.name.value, l.port.value
                            ),
                            s,
                            "used again here",
                        )
                        .with_secondary(fs, "first used here")
                        .with_help("listeners on one port must all be `http` or all be `https`"),
                    );
                }
            }
            Some(_) => {}
            None => {
                first.insert(l.port.value, l);
            }
        }
    }
}

fn route_protocol(p: &Program, r: &Route, out: &mut Vec<Diagnostic>) {
    let Some(port) = p.workload(r.backend).and_then(|w| w.ports.get(r.port)) else { return };
    if !port.protocol.value.is_http() {
        let mut d = Diagnostic::new(
            codes::ROUTE_TO_NON_HTTP,
            format!("route to port `{}`, which speaks {}", port.name.value, port.protocol.value.as_str()),
            r.span,
            "HTTP route",
        )
        .with_help("routes forward HTTP; declare the port with `protocol = http` (or `grpc`) if it speaks HTTP");
        if let Some(s) = port.protocol.span {
            d = d.with_secondary(s, "declared here");
        }
        out.push(d);
    }
}

/// A route with `hostnames` attaches only to listeners whose `hostname`
/// intersects one of them (a listener without one accepts any); Gateway API
/// drops a route that no listener accepts (`Accepted: False`,
/// `NoMatchingListenerHostname`), so its traffic is never routed.
fn route_hostnames(g: &Gateway, r: &Route, out: &mut Vec<Diagnostic>) {
    let (Some(first), Some(last)) = (r.hostnames.first(), r.hostnames.last()) else { return };
    let listeners: Vec<&Listener> = if r.listeners.is_empty() {
        g.listeners.iter().collect()
    } else {
        r.listeners.iter().filter_map(|i| g.listeners.get(i.value)).collect()
    };
    let accepts = |l: &Listener| match &l.hostname {
        None => true,
        Some(h) => r.hostnames.iter().any(|rh| hostnames_intersect(&h.value, &rh.value)),
    };
    if listeners.is_empty() || listeners.iter().any(|l| accepts(l)) {
        return;
    }
    let (Some(lo), Some(hi)) = (first.span, last.span) else { return };
    let message = if r.listeners.is_empty() {
        format!("no listener of gateway `{}` accepts this route's hostnames", g.name.value)
    } else {
        "none of the listeners this route names accepts its hostnames".to_string()
    };
    let mut d = Diagnostic::new(
        codes::ROUTE_HOSTNAME,
        message,
        lo.to(hi),
        if r.hostnames.len() == 1 { "matches no listener" } else { "none matches a listener" },
    )
    .with_note("Gateway API attaches a route only to listeners whose `hostname` matches one of the route's (`*.example.com` matches the names under `example.com`, not `example.com` itself); a route no listener accepts is dropped and its requests are never routed");
    for l in &listeners {
        if let Some(h) = &l.hostname
            && let Some(s) = h.span
        {
            d = d.with_secondary(s, format!("listener `{}` accepts only `{}`", l.name.value, h.value));
        }
    }
    let example = listeners
        .iter()
        .filter_map(|l| l.hostname.as_ref())
        .map(|h| h.value.as_str().strip_prefix("*.").map_or_else(|| h.value.to_string(), |base| format!("www.{base}")))
        .next()
        .unwrap_or_default();
    out.push(d.with_help(format!(
        "name a host the listener serves, such as `\"{example}\"`, or remove `hostnames` so the route takes the listener's"
    )));
}

fn world_source(p: &Program, src: &Spanned<Source>, dst: &Spanned<Dest>, out: &mut Vec<Diagnostic>) {
    if src.value != Source::World || matches!(dst.value, Dest::Gateway { .. }) {
        return;
    }
    let (Some(s), Some(d)) = (src.span, dst.span) else { return };
    let (target, help) = match &dst.value {
        Dest::Workload { id, .. } => (
            format!("workload `{}`", p.workload_path(*id)),
            "declare a `gateway` with a listener and a `route` to this workload, then `allow world -> <gateway>`",
        ),
        Dest::Fqdn { .. } | Dest::Cidr { .. } => (
            "an external destination".into(),
            "`world` is already outside the cluster: flows from it enter through a gateway listener",
        ),
        Dest::Gateway { .. } => return,
    };
    out.push(
        Diagnostic::new(
            codes::WORLD_TO_NON_GATEWAY,
            format!("`world` cannot reach {target} directly"),
            s,
            "traffic from outside the cluster",
        )
        .with_secondary(d, "not a gateway")
        .with_help(help),
    );
}

fn except_inside(src: &Source, dst: &Dest, out: &mut Vec<Diagnostic>) {
    let sets = [
        match src {
            Source::Cidr(s) => Some(s),
            _ => None,
        },
        match dst {
            Dest::Cidr { set, .. } => Some(set),
            _ => None,
        },
    ];
    for set in sets.into_iter().flatten() {
        for e in &set.except {
            if e.value == set.cidr.value
                && let (Some(es), Some(cs)) = (e.span, set.cidr.span)
            {
                out.push(
                    Diagnostic::new(
                        codes::EXCEPT_OUTSIDE,
                        format!("`except {}` leaves nothing of `{}`", e.value, set.cidr.value),
                        es,
                        "the whole block",
                    )
                    .with_secondary(cs, "the block")
                    .with_help("an `except` range must be a part of the block, not all of it"),
                );
            } else if !set.cidr.value.contains(&e.value)
                && let (Some(es), Some(cs)) = (e.span, set.cidr.span)
            {
                out.push(
                    Diagnostic::new(
                        codes::EXCEPT_OUTSIDE,
                        format!("`{}` is not inside `{}`", e.value, set.cidr.value),
                        es,
                        "outside the block",
                    )
                    .with_secondary(cs, "the block it should narrow")
                    .with_help("an `except` range must lie inside the CIDR it narrows; remove it or fix the range"),
                );
            }
        }
    }
}

fn http_rules(p: &Program, http: &HttpMatch, dst: &Spanned<Dest>, out: &mut Vec<Diagnostic>) {
    match &dst.value {
        Dest::Workload { id, ports } => {
            let Some(w) = p.workload(*id) else { return };
            for port in ports.iter().filter_map(|i| w.ports.get(*i)) {
                if port.protocol.value.is_http() {
                    continue;
                }
                let mut d = Diagnostic::new(
                    codes::HTTP_ON_NON_HTTP,
                    format!(
                        "`http` rules on port `{}` of `{}`, which speaks {}",
                        port.name.value,
                        p.workload_path(*id),
                        port.protocol.value.as_str()
                    ),
                    http.span,
                    "HTTP rules",
                )
                .with_help("HTTP rules need a port declared with `protocol = http` or `grpc`; name such a port in the flow, or drop the `http` block");
                if let Some(s) = port.protocol.span.or(Some(port.span)) {
                    d = d.with_secondary(s, format!("port `{}` is {}", port.name.value, port.protocol.value.as_str()));
                }
                out.push(d);
            }
        }
        Dest::Fqdn { .. } | Dest::Cidr { .. } => {
            let mut d = Diagnostic::new(
                codes::HTTP_ON_NON_HTTP,
                "`http` rules on traffic leaving the cluster",
                http.span,
                "HTTP rules",
            )
            .with_help("egress to external names and CIDRs is filtered at L3/L4 only; Cilium L7 rules break ambient pods, so drop the `http` block");
            if let Some(s) = dst.span {
                d = d.with_secondary(s, "external destination");
            }
            out.push(d);
        }
        Dest::Gateway { .. } => {}
    }
}

fn self_flow(f: &Flow, out: &mut Vec<Diagnostic>) {
    if let (Source::Workload(a), Dest::Workload { id: b, .. }) = (&f.src.value, &f.dst.value)
        && a == b
    {
        out.push(
                Diagnostic::new(codes::SELF_FLOW, "flow from a workload to itself", f.span, "source and destination are the same")
                    .with_help("a pod reaching its own port needs no policy; if other replicas must talk to each other, keep this flow"),
            );
    }
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
