//! Flows, `expect` lines, `http` match blocks and gateway routes,
//! resolved once everything they name is declared.

use super::*;

impl<'a> Resolver<'a> {
    pub(super) fn flow(&mut self, f: &'a ast::Flow, scope: Option<NamespaceId>) {
        let src = self.source(&f.src, scope);
        let dst = self.dest(&f.dst, scope);
        let mut http = None;
        if let Some(body) = &f.body {
            let parts = split(&body.stmts, &FLOW, &mut self.diags);
            for (i, b) in parts.blocks.iter().enumerate() {
                self.no_name(b);
                if i > 0 {
                    self.diags.push(
                        Diagnostic::new(
                            codes::DUPLICATE_ATTRIBUTE,
                            "a flow has one `http` block",
                            b.kind.span,
                            "second `http` block",
                        )
                        .with_help("list every method, path and header in one `http` block, or write a second flow"),
                    );
                    continue;
                }
                http = self.http(b);
                if f.kind != FlowKind::Allow
                    && let Some(h) = &http
                {
                    self.concrete_paths(h);
                }
            }
        }
        let (Some(src), Some(dst)) = (src, dst) else { return };
        match f.kind {
            FlowKind::Allow => self.program.flows.push(Flow { src, dst, http, span: f.span }),
            FlowKind::ExpectAllow | FlowKind::ExpectDeny => {
                let verdict = if f.kind == FlowKind::ExpectAllow { Verdict::Allow } else { Verdict::Deny };
                self.program.expects.push(Expect { verdict, src, dst, http, span: f.span });
            }
        }
    }

    /// An `expect` asks about requests, each with one path: a pattern
    /// (`/api/*`, `*.png`, `*`) names no request (Z0415).
    fn concrete_paths(&mut self, h: &HttpMatch) {
        for p in h.paths.iter().filter(|p| p.value.contains('*')) {
            if let Some(span) = p.span {
                self.diags.push(
                    Diagnostic::new(
                        codes::BAD_PATH,
                        format!("`{}` is a pattern, not a request path", p.value),
                        span,
                        "a pattern",
                    )
                    .with_help(format!(
                        "an `expect` asks about requests; name a path one would send, such as `{}`",
                        example_path(&p.value)
                    )),
                );
            }
        }
    }

    pub(super) fn http(&mut self, b: &'a Block) -> Option<HttpMatch> {
        let parts = split(&b.body.stmts, &HTTP, &mut self.diags);
        let v = self.values;
        let mut m = HttpMatch { methods: Vec::new(), paths: Vec::new(), headers: Vec::new(), span: b.span };
        if let Some(a) = parts.attrs.get("methods") {
            for item in self.non_empty_list(a)? {
                // A method is a word; a constant may hold one.
                let (text, sp) = match v.follow(item) {
                    Value::Ident(i) => (i.text.clone(), i.span),
                    Value::Str(s) => (s.value.clone(), s.span),
                    other => {
                        self.diags.push(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                format!("expected an HTTP method, found {}", other.describe()),
                                other.span(),
                                "not a method",
                            )
                            .with_help("write methods as words: `methods = [GET, POST]`"),
                        );
                        continue;
                    }
                };
                match value::parse_method(&text, sp) {
                    Ok(meth) => m.methods.push(Spanned::new(meth, sp)),
                    Err(d) => self.diags.push(d),
                }
            }
        }
        if let Some(a) = parts.attrs.get("paths") {
            for item in self.non_empty_list(a)? {
                match v.string(item) {
                    Ok((p, sp)) => {
                        if let Some(d) = value::check_path(&p, sp) {
                            self.diags.push(d);
                        } else {
                            m.paths.push(Spanned::new(p, sp));
                        }
                    }
                    Err(d) => self.diags.push(d),
                }
            }
        }
        if let Some(a) = parts.attrs.get("headers") {
            match v.map(&a.value) {
                Ok([]) => self.diags.push(
                    Diagnostic::new(codes::EMPTY, "`headers` is empty", a.value.span(), "empty map")
                        .with_help("list at least one header, or remove `headers` to match any"),
                ),
                Ok(entries) => {
                    for e in entries {
                        match v.string(&e.value) {
                            Ok((val, vs)) => {
                                let lower = e.key.text.to_ascii_lowercase();
                                if let Some(d) = value::check_header(&e.key.text, e.key.span, &val, vs) {
                                    self.diags.push(d);
                                } else if let Some((first, _)) = m.headers.iter().find(|(k, _)| k.value == lower) {
                                    let mut d = Diagnostic::new(
                                        codes::DUPLICATE_ATTRIBUTE,
                                        format!("header `{}` is matched twice", e.key.text),
                                        e.key.span,
                                        "matched again here",
                                    )
                                    .with_help("header names are case-insensitive; match each header once");
                                    if let Some(s) = first.span {
                                        d = d.with_secondary(s, "first matched here");
                                    }
                                    self.diags.push(d);
                                } else {
                                    m.headers.push((
                                        Spanned::new(e.key.text.to_ascii_lowercase(), e.key.span),
                                        Spanned::new(val, vs),
                                    ));
                                }
                            }
                            Err(d) => self.diags.push(d),
                        }
                    }
                }
                Err(d) => self.diags.push(d),
            }
        }
        m.methods.sort_by_key(|x| x.value);
        m.methods.dedup_by_key(|x| x.value);
        Some(m)
    }

    pub(super) fn non_empty_list(&mut self, a: &'a ast::Attr) -> Option<&'a [Value]> {
        match self.values.list(&a.value) {
            Ok([]) => {
                self.diags.push(
                    Diagnostic::new(codes::EMPTY, format!("`{}` is empty", a.key.text), a.value.span(), "empty list")
                        .with_help(format!(
                            "an empty list matches nothing; list at least one value or remove `{}` to match any",
                            a.key.text
                        )),
                );
                None
            }
            Ok(items) => Some(items),
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    pub(super) fn route(&mut self, r: &'a ast::Route, gid: GatewayId) -> Option<Route> {
        let path = match value::check_path(&r.path.value, r.path.span) {
            Some(d) => {
                self.diags.push(d);
                None
            }
            None if r.path.value.contains('*') => {
                self.diags.push(
                    Diagnostic::new(
                        codes::BAD_PATH,
                        "route paths are prefixes and take no `*`",
                        r.path.span,
                        "wildcard",
                    )
                    .with_help(format!(
                        "write `\"{}\"`: a route matches every path under its prefix",
                        r.path.value.trim_end_matches('*')
                    )),
                );
                None
            }
            None => Some(Spanned::new(r.path.value.clone(), r.path.span)),
        };
        let backend = match &r.target {
            Target::Ref { ns, name, .. } => match self.named(ns.as_ref(), name, Some(gid.ns))? {
                Named::Workload(w) => Some((w, name)),
                Named::Gateway(_) => {
                    self.diags.push(
                        Diagnostic::new(
                            codes::WRONG_KIND,
                            format!("`{}` is a gateway", name.text),
                            name.span,
                            "routes go to workloads",
                        )
                        .with_help("route to the workload behind it"),
                    );
                    None
                }
            },
            other => {
                self.diags.push(
                    Diagnostic::new(codes::WRONG_KIND, "a route goes to a workload", other.span(), "not a workload")
                        .with_help("write `route \"/\" -> workload:port`"),
                );
                None
            }
        };
        let (backend, at) = backend?;
        let port = match &r.port {
            Some(p) => *self.workload_ports(backend, Some(p), at)?.first()?,
            None => {
                if self.program.workload(backend)?.ports.is_empty() {
                    // The same report as a flow to a workload without ports.
                    self.workload_ports(backend, None, at)?;
                }
                let w = self.program.workload(backend)?;
                // The port meant may be one declared with an error.
                if !w.invalid_ports.is_empty() {
                    return None;
                }
                let http: Vec<usize> =
                    w.ports.iter().enumerate().filter(|(_, p)| p.protocol.value.is_http()).map(|(i, _)| i).collect();
                match (http.as_slice(), w.ports.len()) {
                    ([one], _) => *one,
                    (_, 1) => 0,
                    _ => {
                        self.diags.push(
                            Diagnostic::new(
                                codes::UNKNOWN_PORT,
                                format!("which port of `{}`?", at.text),
                                at.span,
                                "port not named",
                            )
                            .with_help(format!("name the port: `route \"{}\" -> {}:PORT`", r.path.value, at.text)),
                        );
                        return None;
                    }
                }
            }
        };
        let mut route =
            Route { path: path?, backend, port, listeners: Vec::new(), hostnames: Vec::new(), span: r.span };
        let mut detached = false;
        if let Some(body) = &r.body {
            let parts = split(&body.stmts, &ROUTE, &mut self.diags);
            let v = self.values;
            if let Some(a) = parts.attrs.get("listeners") {
                for item in self.non_empty_list(a).unwrap_or(&[]) {
                    let Value::Ident(i) = item else {
                        self.diags.push(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                format!("expected a listener name, found {}", item.describe()),
                                item.span(),
                                "not a name",
                            )
                            .with_help("write listener names as words: `listeners = [https]`"),
                        );
                        continue;
                    };
                    let g = self.program.gateway(gid)?;
                    match g.listeners.iter().position(|l| l.name.value == i.text) {
                        Some(ix) => {
                            self.used(i.span, index::Symbol::Listener(gid, ix));
                            route.listeners.push(Spanned::new(ix, i.span));
                        }
                        // Declared with an error, already reported: the
                        // route is left out, since it cannot be attached.
                        None if g.invalid_listeners.iter().any(|l| l.value == i.text) => detached = true,
                        None => {
                            let mut d = Diagnostic::new(
                                codes::UNKNOWN_PORT,
                                format!("gateway `{}` has no listener `{}`", g.name.value, i.text),
                                i.span,
                                "unknown listener",
                            );
                            if let Some(s) = did_you_mean(&i.text, g.listeners.iter().map(|l| l.name.value.as_str())) {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            }
                            self.diags.push(d);
                        }
                    }
                }
            }
            if let Some(a) = parts.attrs.get("hostnames") {
                for item in self.non_empty_list(a).unwrap_or(&[]) {
                    match v.string(item).and_then(|(s, sp)| value::parse_hostname(&s, sp).map(|n| Spanned::new(n, sp)))
                    {
                        Ok(h) => route.hostnames.push(h),
                        Err(d) => self.diags.push(d),
                    }
                }
            }
        }
        (!detached).then_some(route)
    }
}

/// A request path a pattern matches, for help text.
fn example_path(pattern: &str) -> String {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(""), _) => "/".to_string(),
        (Some(suffix), _) => format!("/index{suffix}"),
        (None, Some(prefix)) if prefix.ends_with('/') => format!("{prefix}index"),
        (None, Some(prefix)) => format!("{prefix}/index"),
        (None, None) => pattern.to_string(),
    }
}
