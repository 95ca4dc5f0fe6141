//! Declarations: namespaces (blocks of one name merge), and what they
//! contain — workloads with their selectors and ports, gateways with their
//! listeners, waypoints — each named once per scope, with the names kept
//! after an error so that one mistake makes one error.

use super::*;

impl<'a> Resolver<'a> {
    /// Declares every namespace and what it contains. Blocks with the same
    /// namespace name add to one namespace.
    pub(super) fn declare_namespaces(&mut self, blocks: &[&'a Block]) {
        for b in blocks {
            let Some(name) = self.block_name(b, "namespace", "demo") else { continue };
            if let (true, Some(span)) = (RESERVED.contains(&name.value.as_str()), name.span) {
                self.diags.push(reserved(&name.value, span));
                continue;
            }
            let id = match self.find_namespace(&name.value) {
                Some(id) => id,
                None => {
                    let id = NamespaceId(self.program.namespaces.len());
                    self.program.namespaces.push(Namespace {
                        name: name.clone(),
                        workloads: Vec::new(),
                        gateways: Vec::new(),
                        waypoints: Vec::new(),
                        span: b.span,
                    });
                    id
                }
            };
            if let Some(span) = name.span {
                self.index.declarations.push((span, index::Symbol::Namespace(id)));
            }
            self.declare_members(b, id);
        }
    }

    pub(super) fn declare_members(&mut self, b: &'a Block, ns: NamespaceId) {
        let parts = split(&b.body.stmts, &NAMESPACE, &mut self.diags);
        self.pending_flows.extend(parts.flows.into_iter().map(|f| (f, Some(ns))));
        for m in parts.blocks {
            match m.kind.text.as_str() {
                "workload" => {
                    if let Some(w) = self.workload(m) {
                        self.add_named(ns, w.name.clone(), "workload", |n| &mut n.workloads, w);
                    }
                }
                "gateway" => {
                    if let Some((g, routes)) = self.gateway(m) {
                        let index = self.program.namespace(ns).map_or(0, |n| n.gateways.len());
                        if self.add_named(ns, g.name.clone(), "gateway", |n| &mut n.gateways, g) {
                            let gid = GatewayId { ns, index };
                            self.pending_routes.extend(routes.into_iter().map(|r| (r, gid)));
                        }
                    }
                }
                _ => {
                    if let Some(w) = self.waypoint(m) {
                        let Some(n) = self.program.namespaces.get_mut(ns.0) else { continue };
                        if let Some(first) = n.waypoints.iter().find(|x| x.name.value == w.name.value) {
                            if let (Some(s), Some(f)) = (w.name.span, first.name.span) {
                                self.diags.push(duplicate("waypoint", &w.name.value, s, f));
                            }
                        } else {
                            n.waypoints.push(w);
                        }
                    }
                }
            }
        }
    }

    /// Adds a workload or gateway; the two share one set of names, because a
    /// flow names either without saying which.
    pub(super) fn add_named<T>(
        &mut self,
        ns: NamespaceId,
        name: Spanned<String>,
        what: &str,
        list: impl Fn(&mut Namespace) -> &mut Vec<T>,
        item: T,
    ) -> bool {
        let key = (ns, name.value.clone());
        let taken = self.names.contains_key(&key);
        let Some(n) = self.program.namespaces.get_mut(ns.0) else { return false };
        let first = if !taken {
            None
        } else {
            n.workloads
                .iter()
                .map(|w| &w.name)
                .chain(n.gateways.iter().map(|g| &g.name))
                .find(|x| x.value == name.value)
                .and_then(|x| x.span)
        };
        if let (Some(first), Some(span)) = (first, name.span) {
            let other = if n.workloads.iter().any(|w| w.name.value == name.value) { "workload" } else { "gateway" };
            let d = if other == what {
                duplicate(what, &name.value, span, first)
            } else {
                Diagnostic::new(
                    codes::DUPLICATE_NAME,
                    format!("`{}` is already the name of a {other} in namespace `{}`", name.value, n.name.value),
                    span,
                    format!("this {what}"),
                )
                .with_secondary(first, format!("the {other}"))
                .with_help(
                    "workloads and gateways of one namespace share their names, because flows name either; rename one",
                )
            };
            self.diags.push(d);
            return false;
        }
        if let (true, Some(span)) = (RESERVED.contains(&name.value.as_str()), name.span) {
            self.diags.push(reserved(&name.value, span));
            return false;
        }
        let items = list(n);
        let index = items.len();
        items.push(item);
        let named = if what == "workload" {
            Named::Workload(WorkloadId { ns, index })
        } else {
            Named::Gateway(GatewayId { ns, index })
        };
        self.names.insert(key, named);
        true
    }

    pub(super) fn workload(&mut self, b: &'a Block) -> Option<Workload> {
        let name = self.block_name(b, "workload", "api")?;
        let parts = split(&b.body.stmts, &WORKLOAD, &mut self.diags);
        let v = self.values;
        let service_account = match parts.attrs.get("service_account") {
            Some(a) => match v.string(&a.value) {
                Ok((s, sp)) => {
                    if let Some(d) = value::check_service_account(&s, sp) {
                        self.diags.push(d);
                    }
                    Spanned::new(s, sp)
                }
                Err(d) => {
                    self.diags.push(d);
                    Spanned::default_value(name.value.clone())
                }
            },
            None => Spanned::default_value(name.value.clone()),
        };
        let mut selector: Option<Vec<(Spanned<String>, Spanned<String>)>> = None;
        let mut selector_span = None;
        let mut ports: Vec<Port> = Vec::new();
        let mut invalid_ports: Vec<Spanned<String>> = Vec::new();
        for inner in parts.blocks {
            if inner.kind.text == "selector" {
                self.no_name(inner);
                if selector.is_some() {
                    self.diags.push(
                        Diagnostic::new(
                            codes::DUPLICATE_ATTRIBUTE,
                            "a workload has one `selector`",
                            inner.kind.span,
                            "second selector",
                        )
                        .with_help("put every label in one `selector` block"),
                    );
                    continue;
                }
                selector = Some(self.labels(inner));
                selector_span = Some(inner.span);
            } else if let Some(declared) = self.port(inner) {
                let d = declare("port", declared, &mut ports, &mut invalid_ports, |p| &p.name);
                self.diags.extend(d);
            }
        }
        let mut selector = selector.unwrap_or_else(|| {
            vec![(Spanned::default_value("app".into()), Spanned::default_value(name.value.clone()))]
        });
        selector.sort_by(|a, b| a.0.value.cmp(&b.0.value));
        let service = match parts.attrs.get("service") {
            Some(a) => match v.string(&a.value) {
                Ok((s, sp)) => {
                    if let Some(d) = value::check_dns1123_label(&s, sp, "service") {
                        self.diags.push(d);
                    }
                    Spanned::new(s, sp)
                }
                Err(d) => {
                    self.diags.push(d);
                    Spanned::default_value(name.value.clone())
                }
            },
            None => Spanned::default_value(name.value.clone()),
        };
        let mut flag = |key: &str| match parts.attrs.get(key).map(|a| v.boolean(&a.value)) {
            Some(Ok((b, sp))) => Spanned::new(b, sp),
            Some(Err(d)) => {
                self.diags.push(d);
                Spanned::default_value(false)
            }
            None => Spanned::default_value(false),
        };
        let uses_pod_ips = flag("uses_pod_ips");
        let scrapes_waypoints = flag("scrapes_waypoints");
        let uses_kube_api = flag("uses_kube_api");
        let waypoint = match parts.attrs.get("waypoint").map(|a| v.string(&a.value)) {
            Some(Ok((s, sp))) => Some(Spanned::new(s, sp)),
            Some(Err(d)) => {
                self.diags.push(d);
                None
            }
            None => None,
        };
        Some(Workload {
            name,
            service_account,
            selector,
            selector_span,
            ports,
            service,
            uses_pod_ips,
            scrapes_waypoints,
            uses_kube_api,
            waypoint,
            invalid_ports,
            span: b.span,
        })
    }

    pub(super) fn labels(&mut self, b: &'a Block) -> Vec<(Spanned<String>, Spanned<String>)> {
        let mut out: Vec<(Spanned<String>, Spanned<String>)> = Vec::new();
        for s in &b.body.stmts {
            let Stmt::Attr(a) = s else {
                self.diags.push(
                    Diagnostic::new(
                        codes::MISPLACED,
                        format!("{} is not allowed in a selector", s.describe()),
                        s.span(),
                        "not a label",
                    )
                    .with_help("a selector holds labels: `app = \"api\"`"),
                );
                continue;
            };
            if let Some((first, _)) = out.iter().find(|(k, _)| k.value == a.key.text) {
                if let Some(f) = first.span {
                    self.diags.push(
                        Diagnostic::new(
                            codes::DUPLICATE_ATTRIBUTE,
                            format!("label `{}` is set twice", a.key.text),
                            a.key.span,
                            "set again here",
                        )
                        .with_secondary(f, "first set here")
                        .with_help("each label may be set only once"),
                    );
                }
                continue;
            }
            match self.values.string(&a.value) {
                Ok((value, vs)) => {
                    self.diags.extend(value::check_label(&a.key.text, a.key.span, &value, vs));
                    out.push((Spanned::new(a.key.text.clone(), a.key.span), Spanned::new(value, vs)));
                }
                Err(d) => self.diags.push(d),
            }
        }
        if b.body.stmts.is_empty() {
            self.diags.push(
                Diagnostic::new(codes::EMPTY, "empty selector", b.body.span, "selects every pod of the namespace")
                    .with_help("name at least one label, e.g. `selector { app = \"api\" }`, or drop the block to use `app = <workload name>`"),
            );
        }
        out
    }

    pub(super) fn port_number(&mut self, a: Option<&&'a ast::Attr>) -> Option<Spanned<u16>> {
        let a = a?;
        // The number's span is where it is used (a constant may be shared).
        let at = a.value.span();
        match self.values.number(&a.value).and_then(|(t, sp)| value::parse_port(&t, sp).map(|n| Spanned::new(n, at))) {
            Ok(n) => Some(n),
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    /// A port; with an error in its number or protocol (reported here), only
    /// its name, which stays declared.
    pub(super) fn port(&mut self, b: &'a Block) -> Option<Result<Port, Spanned<String>>> {
        let name = self.block_name(b, "port", "http")?;
        let parts = split(&b.body.stmts, &PORT, &mut self.diags);
        parts.require("port", "number", "8080", b.kind.span, &mut self.diags);
        let number = self.port_number(parts.attrs.get("number"));
        let protocol = match parts.attrs.get("protocol") {
            Some(a) => match self.values.word(&a.value, PROTOCOLS, "protocol") {
                Ok((p, sp)) => Some(Spanned::new(p, sp)),
                Err(d) => {
                    self.diags.push(d);
                    None
                }
            },
            None => Some(Spanned::default_value(Protocol::Tcp)),
        };
        Some(match (number, protocol) {
            (Some(number), Some(protocol)) => Ok(Port { name, number, protocol, span: b.span }),
            _ => Err(name),
        })
    }

    pub(super) fn gateway(&mut self, b: &'a Block) -> Option<(Gateway, Vec<&'a ast::Route>)> {
        let name = self.block_name(b, "gateway", "ingress")?;
        let parts = split(&b.body.stmts, &GATEWAY, &mut self.diags);
        let mut listeners: Vec<Listener> = Vec::new();
        let mut invalid_listeners: Vec<Spanned<String>> = Vec::new();
        for l in &parts.blocks {
            let Some(declared) = self.listener(l) else { continue };
            let d = declare("listener", declared, &mut listeners, &mut invalid_listeners, |l| &l.name);
            self.diags.extend(d);
        }
        if parts.blocks.is_empty() {
            self.diags.push(
                Diagnostic::new(
                    codes::MISSING_ATTRIBUTE,
                    format!("gateway `{}` has no listener", name.value),
                    b.kind.span,
                    "no listener",
                )
                .with_help("add `listener http { port = 80 }`"),
            );
        }
        if name.value.len() > 57
            && let Some(sp) = name.span
        {
            self.diags.push(
                    Diagnostic::new(codes::BAD_DNS1123, format!("gateway name `{}` is too long", name.value), sp, "more than 57 characters")
                        .with_note("Istio names the gateway's deployment and service account `<gateway>-istio`, which must fit in 63 characters"),
                );
        }
        Some((Gateway { name, listeners, invalid_listeners, routes: Vec::new(), span: b.span }, parts.routes))
    }

    /// A listener; with an error in its port or protocol (reported here),
    /// only its name, which stays declared.
    pub(super) fn listener(&mut self, b: &'a Block) -> Option<Result<Listener, Spanned<String>>> {
        let name = self.block_name(b, "listener", "http")?;
        let parts = split(&b.body.stmts, &LISTENER, &mut self.diags);
        parts.require("listener", "port", "80", b.kind.span, &mut self.diags);
        let port = self.port_number(parts.attrs.get("port"));
        let v = self.values;
        let protocol = match parts.attrs.get("protocol") {
            Some(a) => match v.word(&a.value, LISTENER_PROTOCOLS, "listener protocol") {
                Ok((p, sp)) => Some(Spanned::new(p, sp)),
                Err(d) => {
                    self.diags.push(d);
                    None
                }
            },
            None => Some(Spanned::default_value(ListenerProtocol::Http)),
        };
        let (Some(port), Some(protocol)) = (port, protocol) else { return Some(Err(name)) };
        let hostname = match parts.attrs.get("hostname") {
            Some(a) => {
                match v.string(&a.value).and_then(|(s, sp)| value::parse_hostname(&s, sp).map(|n| Spanned::new(n, sp)))
                {
                    Ok(h) => Some(h),
                    Err(d) => {
                        self.diags.push(d);
                        None
                    }
                }
            }
            None => None,
        };
        let certificate = match parts.attrs.get("certificate") {
            Some(a) => match v.string(&a.value) {
                Ok((s, sp)) => {
                    if let Some(d) = value::check_secret_name(&s, sp) {
                        self.diags.push(d);
                    }
                    Some(Spanned::new(s, sp))
                }
                Err(d) => {
                    self.diags.push(d);
                    None
                }
            },
            None => None,
        };
        if protocol.value == ListenerProtocol::Https
            && certificate.is_none()
            && !parts.attrs.contains_key("certificate")
        {
            parts.require("listener", "certificate", "\"my-tls-secret\"", b.kind.span, &mut self.diags);
        }
        Some(Ok(Listener { name, port, protocol, hostname, certificate, span: b.span }))
    }

    pub(super) fn waypoint(&mut self, b: &'a Block) -> Option<Waypoint> {
        let name = self.block_name(b, "waypoint", "waypoint")?;
        let parts = split(&b.body.stmts, &WAYPOINT, &mut self.diags);
        let for_ = match parts.attrs.get("for") {
            Some(a) => match self.values.word(&a.value, WAYPOINT_FOR, "waypoint traffic type") {
                Ok((t, sp)) => Spanned::new(t, sp),
                Err(d) => {
                    self.diags.push(d);
                    Spanned::default_value(WaypointFor::Service)
                }
            },
            None => Spanned::default_value(WaypointFor::Service),
        };
        Some(Waypoint { name, for_, span: b.span })
    }

    /// A workload's `waypoint` must name a waypoint of its namespace.
    pub(super) fn workload_waypoints(&mut self) {
        let mut out = Vec::new();
        for (ns_ix, n) in self.program.namespaces.iter().enumerate() {
            for w in &n.workloads {
                let Some(wp) = &w.waypoint else { continue };
                if let Some(i) = n.waypoints.iter().position(|x| x.name.value == wp.value) {
                    if let Some(span) = wp.span {
                        self.index.uses.push((span, index::Symbol::Waypoint(NamespaceId(ns_ix), i)));
                    }
                    continue;
                }
                let Some(span) = wp.span else { continue };
                let mut d = Diagnostic::new(
                    codes::UNKNOWN_NAME,
                    format!("no waypoint `{}` in namespace `{}`", wp.value, n.name.value),
                    span,
                    "not declared",
                );
                d = match did_you_mean(&wp.value, n.waypoints.iter().map(|x| x.name.value.as_str())) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("declare it in the namespace: `waypoint {} {{}}`", wp.value)),
                };
                out.push(d);
            }
        }
        self.diags.extend(out);
    }
}
