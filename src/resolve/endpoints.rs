//! Flow endpoints: namespace and workload references (with did-you-mean
//! for unknown names), sources, destinations — workloads, gateways, FQDNs
//! and CIDRs with their `except` ranges — and the ports they name.

use super::*;

impl<'a> Resolver<'a> {
    pub(super) fn find_namespace(&self, name: &str) -> Option<NamespaceId> {
        self.program.namespaces.iter().position(|n| n.name.value == name).map(NamespaceId)
    }

    pub(super) fn namespace_ref(&mut self, ident: &ast::Ident) -> Option<NamespaceId> {
        let found = self.find_namespace(&ident.text);
        if let Some(id) = found {
            self.used(ident.span, index::Symbol::Namespace(id));
        } else {
            let mut d = Diagnostic::new(
                codes::UNKNOWN_NAMESPACE,
                format!("unknown namespace `{}`", ident.text),
                ident.span,
                "not declared",
            );
            let is_workload = self.program.namespaces.iter().find(|n| {
                n.workloads.iter().any(|w| w.name.value == ident.text)
                    || n.gateways.iter().any(|g| g.name.value == ident.text)
            });
            if let Some(s) = did_you_mean(&ident.text, self.program.namespaces.iter().map(|n| n.name.value.as_str())) {
                d = d.with_help(format!("did you mean `{s}`?"));
            } else if let Some(n) = is_workload {
                d = d.with_help(format!(
                    "`{}` is a workload or gateway of namespace `{}`: name it as `{}/{}`",
                    ident.text, n.name.value, n.name.value, ident.text
                ));
            } else if RESERVED.contains(&ident.text.as_str()) {
                d = d.with_help(format!("`{}` is a reserved word and cannot name a namespace", ident.text));
            } else if ident.text == "monitoring" {
                d = d.with_help("`import \"std/observability\"` declares `namespace monitoring` with Prometheus");
            } else {
                d = d.with_help(format!("declare it: `namespace {} {{ ... }}`", ident.text));
            }
            self.diags.push(d);
        }
        found
    }

    /// A workload or gateway named `name` or `ns/name`.
    pub(super) fn named(
        &mut self,
        ns: Option<&ast::Ident>,
        name: &ast::Ident,
        scope: Option<NamespaceId>,
    ) -> Option<Named> {
        let ns_id = match ns {
            Some(n) => self.namespace_ref(n)?,
            None => match scope {
                Some(s) => s,
                None => {
                    self.diags.push(
                        Diagnostic::new(
                            codes::UNKNOWN_NAME,
                            format!("`{}` needs a namespace here", name.text),
                            name.span,
                            "unqualified name at the top level",
                        )
                        .with_help(format!(
                            "write `<namespace>/{}`, or move the flow into its namespace block",
                            name.text
                        )),
                    );
                    return None;
                }
            },
        };
        if let Some(found) = self.names.get(&(ns_id, name.text.clone())).copied() {
            let symbol = match found {
                Named::Workload(w) => index::Symbol::Workload(w),
                Named::Gateway(g) => index::Symbol::Gateway(g),
            };
            self.used(name.span, symbol);
            return Some(found);
        }
        let n = self.program.namespace(ns_id)?;
        if n.waypoints.iter().any(|w| w.name.value == name.text) {
            self.diags.push(
                Diagnostic::new(
                    codes::WRONG_KIND,
                    format!("`{}` is a waypoint", name.text),
                    name.span,
                    "not a workload or gateway",
                )
                .with_help(
                    "waypoints are placed by ztp on the path of flows with `http` rules; name the workloads instead",
                ),
            );
            return None;
        }
        let candidates: Vec<&str> = n
            .workloads
            .iter()
            .map(|w| w.name.value.as_str())
            .chain(n.gateways.iter().map(|g| g.name.value.as_str()))
            .collect();
        let mut d = Diagnostic::new(
            codes::UNKNOWN_NAME,
            format!("no workload or gateway `{}` in namespace `{}`", name.text, n.name.value),
            name.span,
            "not declared",
        );
        if let Some(s) = did_you_mean(&name.text, candidates.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if let Some(other) = self.program.namespaces.iter().find(|o| {
            o.workloads.iter().any(|w| w.name.value == name.text)
                || o.gateways.iter().any(|g| g.name.value == name.text)
        }) {
            d = d.with_help(format!(
                "`{}` is declared in namespace `{}`: write `{}/{}`",
                name.text, other.name.value, other.name.value, name.text
            ));
        } else if self.find_namespace(&name.text).is_some() {
            d = d.with_help(format!(
                "to mean every workload of namespace `{}`, write `namespace({})`",
                name.text, name.text
            ));
        }
        self.diags.push(d);
        None
    }

    pub(super) fn empty_except(&mut self, e: &ast::Endpoint) {
        if let Some(x) = e.except.as_ref().filter(|x| x.targets.is_empty()) {
            self.diags.push(
                Diagnostic::new(codes::EMPTY, "`except []` leaves nothing out", x.span, "empty list")
                    .with_help("list what to leave out, or remove `except`"),
            );
        }
    }

    pub(super) fn source(&mut self, e: &ast::Endpoint, scope: Option<NamespaceId>) -> Option<Spanned<Source>> {
        self.empty_except(e);
        if let Some(p) = &e.port {
            self.diags.push(
                Diagnostic::new(codes::BAD_PORT_REF, "a source has no port", p.span(), "port on the source")
                    .with_help("ports belong to the destination: `allow a -> b:port`"),
            );
        }
        let src = match &e.target {
            Target::World(_) => {
                self.no_except(e, "`world`");
                Source::World
            }
            Target::Namespace { name, .. } => {
                let ns = self.namespace_ref(name)?;
                let mut except = Vec::new();
                for t in e.except.iter().flat_map(|x| &x.targets) {
                    match t {
                        Target::Ref { ns: qn, name, .. } => match self.named(qn.as_ref(), name, Some(ns))? {
                            Named::Workload(w) if w.ns == ns => except.push(w),
                            _ => self.diags.push(
                                Diagnostic::new(
                                    codes::BAD_EXCEPT,
                                    format!("`{}` is not a workload of namespace `{}`", name.text, self.ns_name(ns)),
                                    t.span(),
                                    "cannot be excepted",
                                )
                                .with_help("`namespace(x) except ...` lists workloads of namespace x"),
                            ),
                        },
                        other => self.diags.push(
                            Diagnostic::new(
                                codes::BAD_EXCEPT,
                                "`namespace(...) except` lists workloads",
                                other.span(),
                                "not a workload",
                            )
                            .with_help("write `namespace(x) except [a, b]` with workload names"),
                        ),
                    }
                }
                Source::Namespace { ns, except }
            }
            Target::Cidr(t) => Source::Cidr(self.cidr_set(t, e)?),
            Target::Fqdn(s) => {
                self.diags.push(
                    Diagnostic::new(codes::BAD_ENDPOINT, format!("`\"{}\"` cannot be a source", s.value), s.span, "DNS name as source")
                        .with_help("DNS names are egress destinations; for traffic from outside the cluster, use `world` toward a gateway or a CIDR"),
                );
                return None;
            }
            Target::Ref { ns, name, .. } => {
                self.no_except(e, &format!("`{}`", name.text));
                match self.named(ns.as_ref(), name, scope)? {
                    Named::Workload(w) => Source::Workload(w),
                    Named::Gateway(g) => Source::Gateway(g),
                }
            }
        };
        Some(Spanned::new(src, e.span))
    }

    pub(super) fn ns_name(&self, ns: NamespaceId) -> String {
        self.program.namespace(ns).map(|n| n.name.value.clone()).unwrap_or_default()
    }

    pub(super) fn no_except(&mut self, e: &ast::Endpoint, what: &str) {
        if let Some(x) = &e.except {
            self.diags.push(
                Diagnostic::new(codes::BAD_EXCEPT, format!("{what} cannot have `except`"), x.span, "not allowed here")
                    .with_help("`except` narrows `namespace(x)` (by workloads) or a CIDR (by CIDRs)"),
            );
        }
    }

    pub(super) fn cidr_set(&mut self, t: &ast::Token, e: &ast::Endpoint) -> Option<CidrSet> {
        let cidr = match value::parse_cidr(&t.text, t.span) {
            Ok(c) => Spanned::new(c, t.span),
            Err(d) => {
                self.diags.push(d);
                return None;
            }
        };
        let mut except = Vec::new();
        for x in e.except.iter().flat_map(|x| &x.targets) {
            match x {
                Target::Cidr(tok) => match value::parse_cidr(&tok.text, tok.span) {
                    Ok(c) => except.push(Spanned::new(c, tok.span)),
                    Err(d) => self.diags.push(d),
                },
                other => self.diags.push(
                    Diagnostic::new(codes::BAD_EXCEPT, "a CIDR's `except` lists CIDRs", other.span(), "not a CIDR")
                        .with_help("write `10.0.0.0/8 except [10.1.0.0/16]`"),
                ),
            }
        }
        Some(CidrSet { cidr, except })
    }

    pub(super) fn dest(&mut self, e: &ast::Endpoint, scope: Option<NamespaceId>) -> Option<Spanned<Dest>> {
        self.empty_except(e);
        let numeric_port = |r: &mut Self| -> Option<Option<Spanned<u16>>> {
            match &e.port {
                None => Some(None),
                Some(ast::PortRef::Number(t)) => match value::parse_port(&t.text, t.span) {
                    Ok(n) => Some(Some(Spanned::new(n, t.span))),
                    Err(d) => {
                        r.diags.push(d);
                        None
                    }
                },
                Some(ast::PortRef::Name(i)) => {
                    r.diags.push(
                        Diagnostic::new(
                            codes::BAD_PORT_REF,
                            format!("named port `{}` on an external destination", i.text),
                            i.span,
                            "not a number",
                        )
                        .with_help(
                            "external destinations take port numbers, e.g. `:443`; port names belong to workloads",
                        ),
                    );
                    None
                }
            }
        };
        let dst = match &e.target {
            Target::World(s) => {
                self.diags.push(
                    Diagnostic::new(codes::BAD_ENDPOINT, "`world` cannot be a destination", *s, "not a destination")
                        .with_help("name the external destination: a DNS name such as `\"api.github.com\":443` or a CIDR such as `203.0.113.0/24:443`"),
                );
                return None;
            }
            Target::Namespace { span, name } => {
                self.diags.push(
                    Diagnostic::new(
                        codes::BAD_ENDPOINT,
                        format!("`namespace({})` cannot be a destination", name.text),
                        *span,
                        "not a destination",
                    )
                    .with_help("allow each destination workload port; flows go to a workload, a DNS name or a CIDR"),
                );
                return None;
            }
            Target::Fqdn(s) => {
                self.no_except(e, "a DNS name");
                let name = match value::parse_dns_name(&s.value, s.span) {
                    Ok(n) => Spanned::new(n, s.span),
                    Err(d) => {
                        self.diags.push(d);
                        return None;
                    }
                };
                Dest::Fqdn { name, port: numeric_port(self)? }
            }
            Target::Cidr(t) => {
                let set = self.cidr_set(t, e);
                let port = numeric_port(self)?;
                Dest::Cidr { set: set?, port }
            }
            Target::Ref { ns, name, .. } => {
                if let Some(x) = &e.except {
                    self.diags.push(
                        Diagnostic::new(
                            codes::BAD_EXCEPT,
                            format!("destination `{}` cannot have `except`", name.text),
                            x.span,
                            "not allowed here",
                        )
                        .with_help(
                            "to leave out sources, put `except` on the source: `namespace(x) except a -> b:port`",
                        ),
                    );
                }
                match self.named(ns.as_ref(), name, scope)? {
                    Named::Workload(id) => {
                        Dest::Workload { id, ports: self.workload_ports(id, e.port.as_ref(), name)? }
                    }
                    Named::Gateway(id) => {
                        Dest::Gateway { id, listeners: self.gateway_listeners(id, e.port.as_ref(), name)? }
                    }
                }
            }
        };
        Some(Spanned::new(dst, e.span))
    }

    pub(super) fn workload_ports(
        &mut self,
        id: WorkloadId,
        port: Option<&ast::PortRef>,
        at: &ast::Ident,
    ) -> Option<Vec<usize>> {
        let w = self.program.workload(id)?;
        let path = self.program.workload_path(id);
        let listed = || {
            w.ports.iter().map(|p| format!("`{}` ({})", p.name.value, p.number.value)).collect::<Vec<_>>().join(", ")
        };
        // A port declared with an error may be the one meant: its error is
        // the only one reported.
        let invalid = |name: Option<&str>| match name {
            Some(n) => w.invalid_ports.iter().any(|p| p.value == n),
            None => !w.invalid_ports.is_empty(),
        };
        let d = match port {
            None if w.ports.is_empty() && invalid(None) => return None,
            None if w.ports.is_empty() => Diagnostic::new(
                codes::UNKNOWN_PORT,
                format!("`{path}` declares no ports"),
                at.span,
                "no ports to allow",
            )
            .with_help("declare one: `port http { number = 8080, protocol = http }`"),
            None => return Some((0..w.ports.len()).collect()),
            Some(ast::PortRef::Name(i)) => {
                if let Some(ix) = w.ports.iter().position(|p| p.name.value == i.text) {
                    self.index.uses.push((i.span, index::Symbol::Port(id, ix)));
                    return Some(vec![ix]);
                }
                if invalid(Some(&i.text)) {
                    return None;
                }
                let mut d = Diagnostic::new(
                    codes::UNKNOWN_PORT,
                    format!("`{path}` has no port `{}`", i.text),
                    i.span,
                    "unknown port",
                );
                if let Some(s) = did_you_mean(&i.text, w.ports.iter().map(|p| p.name.value.as_str())) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                } else if w.ports.is_empty() {
                    d = d.with_help("this workload declares no ports; add `port NAME { number = N }`");
                } else {
                    d = d.with_help(format!("its ports are {}", listed()));
                }
                d
            }
            Some(ast::PortRef::Number(t)) => {
                let n = match value::parse_port(&t.text, t.span) {
                    Ok(n) => n,
                    Err(d) => {
                        self.diags.push(d);
                        return None;
                    }
                };
                if let Some(ix) = w.ports.iter().position(|p| p.number.value == n) {
                    self.index.uses.push((t.span, index::Symbol::Port(id, ix)));
                    return Some(vec![ix]);
                }
                if invalid(None) {
                    return None;
                }
                let help = if w.ports.is_empty() {
                    "this workload declares no ports; add `port NAME { number = N }`".to_string()
                } else {
                    format!("its ports are {}", listed())
                };
                Diagnostic::new(codes::UNKNOWN_PORT, format!("`{path}` has no port {n}"), t.span, "not declared")
                    .with_help(help)
            }
        };
        self.diags.push(d);
        None
    }

    pub(super) fn gateway_listeners(
        &mut self,
        id: GatewayId,
        port: Option<&ast::PortRef>,
        at: &ast::Ident,
    ) -> Option<Vec<usize>> {
        let g = self.program.gateway(id)?;
        let path = self.program.gateway_path(id);
        // As for workload ports: a listener declared with an error may be the
        // one meant, and its error is the only one reported.
        let (found, invalid) = match port {
            None if g.listeners.is_empty() && !g.invalid_listeners.is_empty() => return None,
            None => return Some((0..g.listeners.len()).collect()),
            Some(ast::PortRef::Name(i)) => (
                g.listeners.iter().position(|l| l.name.value == i.text),
                g.invalid_listeners.iter().any(|l| l.value == i.text),
            ),
            Some(ast::PortRef::Number(t)) => match value::parse_port(&t.text, t.span) {
                Ok(n) => (g.listeners.iter().position(|l| l.port.value == n), !g.invalid_listeners.is_empty()),
                Err(d) => {
                    self.diags.push(d);
                    return None;
                }
            },
        };
        if let Some(ix) = found {
            if let Some(p) = port {
                self.index.uses.push((p.span(), index::Symbol::Listener(id, ix)));
            }
            return Some(vec![ix]);
        }
        if invalid {
            return None;
        }
        let span = port.map_or(at.span, ast::PortRef::span);
        let mut d = Diagnostic::new(
            codes::UNKNOWN_PORT,
            format!("gateway `{path}` has no such listener"),
            span,
            "unknown listener",
        );
        if let Some(ast::PortRef::Name(i)) = port
            && let Some(s) = did_you_mean(&i.text, g.listeners.iter().map(|l| l.name.value.as_str()))
        {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        if d.help.is_empty() {
            let listed = g
                .listeners
                .iter()
                .map(|l| format!("`{}` ({})", l.name.value, l.port.value))
                .collect::<Vec<_>>()
                .join(", ");
            d = d.with_help(format!("its listeners are {listed}"));
        }
        self.diags.push(d);
        None
    }
}
