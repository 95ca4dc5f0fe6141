//! `mesh` and `cluster` settings: a program's own override the stdlib's,
//! the same setting twice at one level is a conflict, and each value is
//! checked as it is read.

use super::*;

impl<'a> Resolver<'a> {
    /// Merges `mesh` and `cluster` blocks: a program's own settings override
    /// the stdlib's; the same setting twice at one level is a conflict.
    pub(super) fn options(&mut self, blocks: &[(&'a Block, bool)]) {
        let mut mesh: BTreeMap<&str, OptionAttr<'a>> = BTreeMap::new();
        let mut cluster: BTreeMap<&str, OptionAttr<'a>> = BTreeMap::new();
        for (b, is_stdlib) in blocks {
            self.no_name(b);
            let (shape, target) = if b.kind.text == "mesh" { (&MESH, &mut mesh) } else { (&CLUSTER, &mut cluster) };
            let parts = split(&b.body.stmts, shape, &mut self.diags);
            for (key, attr) in parts.attrs {
                match target.get(key) {
                    Some((_, true)) if !is_stdlib => {
                        target.insert(key, (attr, *is_stdlib));
                    }
                    Some((_, false)) if *is_stdlib => {}
                    Some((first, _)) => self.diags.push(
                        Diagnostic::new(
                            codes::CONFLICTING_OPTION,
                            format!("`{}.{key}` is set in two places", b.kind.text),
                            attr.key.span,
                            "set again here",
                        )
                        .with_secondary(first.key.span, "first set here")
                        .with_help("set each option once for the whole program"),
                    ),
                    None => {
                        target.insert(key, (attr, *is_stdlib));
                    }
                }
            }
        }
        let v = self.values;
        let m = &mut self.program.mesh;
        let mut errs = Vec::new();
        if let Some((a, _)) = mesh.get("trust_domain") {
            match v.string(&a.value) {
                Ok((s, sp)) => {
                    errs.extend(value::check_trust_domain(&s, sp));
                    m.trust_domain = Spanned::new(s, sp);
                }
                Err(d) => errs.push(d),
            }
        }
        if let Some((a, _)) = mesh.get("mtls") {
            match v.word(&a.value, MTLS_MODES, "mTLS mode") {
                Ok((t, sp)) => m.mtls = Spanned::new(t, sp),
                Err(d) => errs.push(d),
            }
        }
        if let Some((a, _)) = mesh.get("root_namespace") {
            match v.string(&a.value) {
                Ok((s, sp)) => {
                    errs.extend(value::check_dns1123_label(&s, sp, "namespace"));
                    m.root_namespace = Spanned::new(s, sp);
                }
                Err(d) => errs.push(d),
            }
        }
        let c = &mut self.program.cluster;
        if let Some((a, _)) = cluster.get("stack") {
            match v.string(&a.value) {
                Ok((s, sp)) => {
                    errs.extend(value::check_dns1123_label(&s, sp, "stack name"));
                    c.stack = Some(Spanned::new(s, sp));
                }
                Err(d) => errs.push(d),
            }
        }
        if let Some((a, _)) = cluster.get("cilium_version") {
            match v.string(&a.value) {
                Ok((s, sp)) => match value::parse_version(&s) {
                    Some(ver) => c.cilium_version = Spanned::new(ver, sp),
                    None => errs.push(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            format!("`{s}` is not a version"),
                            sp,
                            "expected `major.minor`",
                        )
                        .with_help("write the Cilium version as \"1.18\" or \"1.18.3\""),
                    ),
                },
                Err(d) => errs.push(d),
            }
        }
        if let Some((a, _)) = cluster.get("hbone") {
            match v.word(&a.value, HBONE_MODES, "HBONE mode") {
                Ok((t, sp)) => c.hbone = Spanned::new(t, sp),
                Err(d) => errs.push(d),
            }
        }
        for (key, slot) in [
            ("allow_dns", &mut c.allow_dns),
            ("allow_ambient_probes", &mut c.allow_ambient_probes),
            ("default_deny", &mut c.default_deny),
        ] {
            if let Some((a, _)) = cluster.get(key) {
                match v.boolean(&a.value) {
                    Ok((b, sp)) => *slot = Spanned::new(b, sp),
                    Err(d) => errs.push(d),
                }
            }
        }
        if let Some((a, _)) = cluster.get("system_namespaces") {
            match v.list(&a.value) {
                Ok(items) => {
                    for item in items {
                        match v.string(item) {
                            Ok((s, sp)) => {
                                errs.extend(value::check_dns1123_label(&s, sp, "namespace"));
                                c.system_namespaces.push(Spanned::new(s, sp));
                            }
                            Err(d) => errs.push(d),
                        }
                    }
                }
                Err(d) => errs.push(d),
            }
        }
        if let Some((a, _)) = cluster.get("deny_egress") {
            match v.list(&a.value) {
                Ok(items) => {
                    for item in items {
                        match v.cidr(item).and_then(|(t, sp)| value::parse_cidr(&t, sp).map(|c| (c, sp))) {
                            Ok((cidr, sp)) => c.deny_egress.push(Spanned::new(cidr, sp)),
                            Err(d) => errs.push(d),
                        }
                    }
                }
                Err(d) => errs.push(d),
            }
        }
        self.diags.extend(errs);
    }
}
