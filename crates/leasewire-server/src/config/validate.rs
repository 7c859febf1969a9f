//! Validation: the file's text in, a [`Validated`] configuration out, or a [`ConfigError`] naming the key and
//! the line.

use super::*;
use ipnet::Ipv4Net;
use leasewire_proto::options::code;
use std::net::Ipv4Addr;
use toml::Spanned;

impl Config {
    /// Parse and validate a configuration file's text.
    pub fn parse(text: &str) -> Result<Validated, ConfigError> {
        // Through serde_path_to_error, so a wrong value names its key (`server.lease-time`), not only its line.
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
            key: String::new(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_string(),
        })?;
        let raw: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let e = e.into_inner();
            let line = e.span().map(|s| line_of(text, s.start));
            ConfigError { key: if path == "." { String::new() } else { path }, line, message: e.message().to_string() }
        })?;
        let classes = client_classes(&raw.client_classes, text)?;
        let subnets = raw
            .subnets
            .iter()
            .enumerate()
            .map(|(i, s)| s.validate(i, text, &classes))
            .collect::<Result<Vec<_>, _>>()?;
        check_overlaps(&subnets, &raw, text)?;
        check_shared_networks(&subnets, &raw, text)?;
        let leasequery_allow = prefixes(&raw.leasequery.allow, "leasequery.allow", text)?;
        let bulk_allow = prefixes(&raw.bulk_leasequery.allow, "bulk-leasequery.allow", text)?;
        let mut requestor_withhold = Vec::new();
        for (i, r) in raw.leasequery.requestors.iter().enumerate() {
            let net = prefixes(std::slice::from_ref(&r.prefix), &format!("leasequery.requestor[{i}].prefix"), text)?;
            requestor_withhold.push((net[0], r.withhold.clone()));
        }
        requestor_withhold.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        let lq = &raw.leasequery;
        match (&lq.auth_key_id, &lq.auth_secret) {
            (Some(_), Some(secret)) => {
                if parse_hex(secret.get_ref()).is_none_or(|s| s.is_empty()) {
                    return err(
                        "leasequery.auth-secret".into(),
                        text,
                        Some(secret.span()),
                        "must be the shared secret in hex (e.g. \"a1b2c3...\")",
                    );
                }
            }
            (None, None) => {}
            (Some(_), None) => {
                return err("leasequery.auth-secret".into(), text, None, "auth-key-id needs auth-secret");
            }
            (None, Some(s)) => {
                return err("leasequery.auth-key-id".into(), text, Some(s.span()), "auth-secret needs auth-key-id");
            }
        }
        let mut requestor_query_types = Vec::new();
        for (i, r) in raw.bulk_leasequery.requestors.iter().enumerate() {
            let key = format!("bulk-leasequery.requestor[{i}]");
            let net = prefixes(std::slice::from_ref(&r.prefix), &format!("{key}.prefix"), text)?;
            let mut kinds = QueryTypes::NONE;
            for name in &r.query_types {
                let Some(kind) = QueryTypes::named(name.get_ref()) else {
                    let known: Vec<&str> = QueryTypes::NAMES.iter().map(|(n, _)| *n).collect();
                    return err(
                        format!("{key}.query-types"),
                        text,
                        Some(name.span()),
                        format!("unknown query type {:?}: one of {}", name.get_ref(), known.join(", ")),
                    );
                };
                kinds = kinds.with(kind);
            }
            requestor_query_types.push((net[0], kinds));
        }
        requestor_query_types.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        let mut warnings = Vec::new();
        static_route_warnings(&subnets, &mut warnings);
        class_warnings(&classes, &subnets, &mut warnings);
        let b = &raw.bulk_leasequery;
        if b.data_timeout < default_data_timeout() {
            warnings.push(format!(
                "bulk-leasequery.data-timeout = {} is below BULK_LQ_DATA_TIMEOUT (300 s), which RFC 6926 §6.3 does not recommend",
                b.data_timeout
            ));
        }
        let a = &raw.active_leasequery;
        if a.enabled && !a.insecure && a.tls.is_none() {
            return err(
                "active-leasequery.tls".into(),
                text,
                None,
                "secure mode (DHCPTLS with mutual TLS) is the default once Active Leasequery is enabled: give [active-leasequery.tls] cert, key and ca (`leasewire lab-certs` makes a set), or set insecure = true to run without TLS on a trusted network",
            );
        }
        if a.enabled && raw.bulk_leasequery.allow.is_empty() {
            return err(
                "active-leasequery.enabled".into(),
                text,
                None,
                "Active Leasequery uses the bulk-leasequery listener: set bulk-leasequery.allow",
            );
        }
        for (key, value, default) in [("idle-timeout", a.idle_timeout, 60), ("send-timeout", a.send_timeout, 120)] {
            if value < default {
                warnings.push(format!("active-leasequery.{key} = {value} is below the RFC 7724 default ({default} s), which §5.3 says should not be used"));
            }
        }
        if b.max_connections == 0 || b.max_queries_per_connection == 0 {
            return err(
                "bulk-leasequery".into(),
                text,
                None,
                "max-connections and max-queries-per-connection must be at least 1",
            );
        }
        let srv = &raw.server;
        for (key, v) in [("server.user", &srv.user), ("server.group", &srv.group)] {
            if v.as_deref().is_some_and(|n| n.is_empty() || n.contains(['/', ':', ' '])) {
                return err(key.into(), text, None, "expected a user or group name");
            }
        }
        if srv.group.is_some() && srv.user.is_none() {
            return err("server.group".into(), text, None, "only used with server.user");
        }
        if b.max_pending_connections == 0 {
            return err("bulk-leasequery.max-pending-connections".into(), text, None, "must be at least 1");
        }
        if b.pre_auth_timeout == 0 || b.pre_auth_timeout > b.data_timeout {
            return err(
                "bulk-leasequery.pre-auth-timeout".into(),
                text,
                None,
                format!("must be between 1 and data-timeout ({} s)", b.data_timeout),
            );
        }
        let store = store_choice(&raw.server, text)?;
        Ok(Validated {
            raw,
            subnets,
            classes,
            leasequery_allow,
            bulk_allow,
            requestor_withhold,
            requestor_query_types,
            warnings,
            store,
            source_sha256: None,
        })
    }

    /// Read, parse and validate a file. Relative paths in it (data directory, certificates, keys, CAs) are
    /// taken relative to the file's own directory, so the meaning of a file does not depend on where the
    /// server was started from.
    pub fn load(path: &std::path::Path) -> Result<Validated, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            key: String::new(),
            line: None,
            message: format!("cannot read the file: {e}"),
        })?;
        let mut config = Self::parse(&text)?;
        config.source_sha256 = Some(sha256_hex(text.as_bytes()));
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// The effective configuration (defaults filled in) as TOML, for `leasewire ctl config show`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot show the configuration: {e}\n"))
    }
}

/// Check `[server] store`: the kind is known and each key belongs to it.
fn store_choice(server: &ServerSection, text: &str) -> Result<StoreChoice, ConfigError> {
    let sqlite = || match server.data_dir {
        Some(_) => Ok(StoreChoice::Sqlite),
        None => err(
            "server.data-dir".into(),
            text,
            None,
            "required with the embedded store (the default): where the lease database lives",
        ),
    };
    let Some(section) = &server.store else { return sqlite() };
    let st = section.get_ref();
    let kind = st.kind.get_ref().as_str();
    match kind {
        "sqlite" => {
            let extra = [
                st.url.as_ref().map(|v| ("url", v.span())),
                st.name.as_ref().map(|v| ("name", v.span())),
                st.start_at.as_ref().map(|v| ("start-at", v.span())),
                st.pool_size.as_ref().map(|v| ("pool-size", v.span())),
                st.ca.as_ref().map(|v| ("ca", v.span())),
                st.cert.as_ref().map(|v| ("cert", v.span())),
                st.key.as_ref().map(|v| ("key", v.span())),
            ];
            if let Some((key, span)) = extra.into_iter().flatten().next() {
                return err(format!("server.store.{key}"), text, Some(span), "only for kind = \"postgres\"");
            }
            sqlite()
        }
        "postgres" => {
            let Some(url) = &st.url else {
                return err(
                    "server.store.url".into(),
                    text,
                    Some(section.span()),
                    "kind = \"postgres\" needs url (e.g. \"postgresql://leasewire@db.example/leases\")",
                );
            };
            if url.get_ref().trim().is_empty() {
                return err("server.store.url".into(), text, Some(url.span()), "must not be empty");
            }
            let name = match &st.name {
                Some(n) if n.get_ref().trim().is_empty() => {
                    return err("server.store.name".into(), text, Some(n.span()), "must not be empty");
                }
                Some(n) => n.get_ref().clone(),
                None => server.server_id.to_string(),
            };
            let start_at = match &st.start_at {
                Some(v) if !(0.0..1.0).contains(v.get_ref()) => {
                    return err("server.store.start-at".into(), text, Some(v.span()), "must be at least 0 and below 1");
                }
                Some(v) => *v.get_ref(),
                // FNV-1a of the name: stable across restarts and builds.
                None => {
                    let h = name
                        .bytes()
                        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
                    (h % 1_000_000) as f64 / 1_000_000.0
                }
            };
            let pool_size = match &st.pool_size {
                Some(v) if *v.get_ref() == 0 => {
                    return err("server.store.pool-size".into(), text, Some(v.span()), "must be at least 1");
                }
                Some(v) => *v.get_ref(),
                None => 8,
            };
            let client = match (&st.cert, &st.key) {
                (Some(c), Some(k)) => Some((c.get_ref().clone(), k.get_ref().clone())),
                (None, None) => None,
                (Some(c), None) => return err("server.store.key".into(), text, Some(c.span()), "cert needs key"),
                (None, Some(k)) => return err("server.store.cert".into(), text, Some(k.span()), "key needs cert"),
            };
            let tls = match (&st.ca, client) {
                (Some(ca), _) if url.get_ref().contains("host=/") || url.get_ref().contains("host=%2F") => {
                    return err(
                        "server.store.ca".into(),
                        text,
                        Some(ca.span()),
                        "the url names a Unix socket, where PostgreSQL offers no TLS: use a TCP host, or drop ca",
                    );
                }
                (Some(ca), client) => Some(StoreTls { ca: ca.get_ref().clone(), client }),
                (None, None) => None,
                (None, Some(_)) => {
                    let span = st.cert.as_ref().map(|c| c.span());
                    return err(
                        "server.store.ca".into(),
                        text,
                        span,
                        "a client certificate needs ca (the CA of the database server's certificate)",
                    );
                }
            };
            Ok(StoreChoice::Postgres { url: url.get_ref().clone(), name, start_at, pool_size, tls })
        }
        other => err(
            "server.store.kind".into(),
            text,
            Some(st.kind.span()),
            format!("unknown store kind {other:?}: expected \"sqlite\" or \"postgres\""),
        ),
    }
}

fn prefixes(list: &[Spanned<String>], key: &str, text: &str) -> Result<Vec<Ipv4Net>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let net = p.get_ref().parse::<Ipv4Net>().or_else(|_| p.get_ref().parse::<Ipv4Addr>().map(Ipv4Net::from));
            net.map(|n| n.trunc())
                .or_else(|_| err(format!("{key}[{i}]"), text, Some(p.span()), "expected an IPv4 prefix or address"))
        })
        .collect()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

fn err<T>(
    key: String,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    message: impl Into<String>,
) -> Result<T, ConfigError> {
    Err(ConfigError { key, line: span.map(|s| line_of(text, s.start)), message: message.into() })
}

/// Text, or `"hex:..."` for octets: 1 to 255 octets (an option's or sub-option's value).
fn octets_value(v: &Spanned<String>, key: String, text: &str) -> Result<Vec<u8>, ConfigError> {
    match v.get_ref().strip_prefix("hex:") {
        Some(h) => match parse_hex(h) {
            Some(b) if !b.is_empty() && b.len() <= 255 => Ok(b),
            _ => err(key, text, Some(v.span()), "expected 1 to 255 octets of hex after hex:"),
        },
        None if !v.get_ref().is_empty() && v.get_ref().len() <= 255 => Ok(v.get_ref().as_bytes().to_vec()),
        None => err(key, text, Some(v.span()), "expected 1 to 255 octets of text, or hex:..."),
    }
}

/// A [`Condition`] on the field a pattern is for.
type MakeCondition = fn(Pattern) -> Condition;

/// `[[client-class]]`: names unique, at least one condition each, values checked, options encoded.
fn client_classes(raw: &[ClientClassConfig], text: &str) -> Result<ClientClasses, ConfigError> {
    if raw.len() > MAX_CLASSES {
        let span = raw[MAX_CLASSES].name.span();
        return err(format!("client-class[{MAX_CLASSES}]"), text, Some(span), format!("at most {MAX_CLASSES} classes"));
    }
    let mut classes = Vec::with_capacity(raw.len());
    for (i, c) in raw.iter().enumerate() {
        let key = |k: &str| format!("client-class[{i}].{k}");
        let name = c.name.get_ref().trim();
        if name.is_empty() {
            return err(key("name"), text, Some(c.name.span()), "must not be empty");
        }
        if let Some(j) = raw[..i].iter().position(|o| o.name.get_ref().trim() == name) {
            return err(key("name"), text, Some(c.name.span()), format!("{name:?} is already client-class[{j}]"));
        }
        let mut conditions = Vec::new();
        let patterns: [(&str, &Option<Spanned<String>>, bool, MakeCondition); 8] = [
            ("vendor-class", &c.vendor_class, false, Condition::VendorClass),
            ("vendor-class-prefix", &c.vendor_class_prefix, true, Condition::VendorClass),
            ("user-class", &c.user_class, false, Condition::UserClass),
            ("user-class-prefix", &c.user_class_prefix, true, Condition::UserClass),
            ("circuit-id", &c.circuit_id, false, Condition::CircuitId),
            ("circuit-id-prefix", &c.circuit_id_prefix, true, Condition::CircuitId),
            ("remote-id", &c.remote_id, false, Condition::RemoteId),
            ("remote-id-prefix", &c.remote_id_prefix, true, Condition::RemoteId),
        ];
        for (k, v, prefix, make) in patterns {
            if let Some(v) = v {
                conditions.push(make(Pattern { octets: octets_value(v, key(k), text)?, prefix }));
            }
        }
        if let Some(m) = &c.mac_prefix {
            match parse_hex(m.get_ref()) {
                Some(b) if !b.is_empty() && b.len() <= 16 => conditions.push(Condition::MacPrefix(b)),
                _ => {
                    return err(key("mac-prefix"), text, Some(m.span()), "expected 1 to 16 octets like 00:1a:2b");
                }
            }
        }
        if let Some(g) = &c.giaddr {
            let net = prefixes(std::slice::from_ref(g), &key("giaddr"), text).map_err(|mut e| {
                e.key = key("giaddr");
                e
            })?;
            conditions.push(Condition::Giaddr(net[0]));
        }
        if conditions.is_empty() {
            return err(
                format!("client-class[{i}]"),
                text,
                Some(c.name.span()),
                "a class needs at least one of vendor-class, user-class, circuit-id, remote-id (each also -prefix), mac-prefix or giaddr",
            );
        }
        let options = c.options.encode_set().map_err(|(k, m)| ConfigError {
            key: key(&format!("options.{k}")),
            line: None,
            message: m,
        })?;
        classes.push(ClientClass { name: name.to_string(), conditions, options });
    }
    Ok(ClientClasses { classes })
}

/// A pool's `allow` or `deny`: class names, each declared.
fn class_names(
    names: &[Spanned<String>],
    classes: &ClientClasses,
    key: String,
    text: &str,
) -> Result<ClassSet, ConfigError> {
    let mut set = ClassSet::EMPTY;
    for (n, name) in names.iter().enumerate() {
        match classes.index(name.get_ref().trim()) {
            Some(c) => set.insert(c),
            None => {
                let known: Vec<&str> = classes.classes.iter().map(|c| c.name.as_str()).collect();
                return err(
                    format!("{key}[{n}]"),
                    text,
                    Some(name.span()),
                    format!("no [[client-class]] named {:?} (declared: {})", name.get_ref(), known.join(", ")),
                );
            }
        }
    }
    Ok(set)
}

/// What `check-config` reports about classes: a class that can never match, one that nothing uses, and a
/// pool no client can get an address from (every class it allows is denied too or can never match, or is
/// tied to relays whose giaddr lies in no subnet of the pool's network).
fn class_warnings(classes: &ClientClasses, subnets: &[Subnet], warnings: &mut Vec<String>) {
    let mut used = ClassSet::EMPTY;
    for s in subnets {
        for (_, a) in &s.pool_access {
            for i in a.allow.iter().chain(a.deny.iter()) {
                used.insert(i);
            }
        }
    }
    let mut never = ClassSet::EMPTY;
    for (i, c) in classes.classes.iter().enumerate() {
        if let Some(why) = c.contradiction() {
            never.insert(i);
            warnings.push(format!("client-class {:?} can never match: {why}", c.name));
        } else if !used.contains(i) && c.options.is_empty() {
            warnings.push(format!(
                "client-class {:?} is in no pool's allow or deny and sets no options: it has no effect",
                c.name
            ));
        }
    }
    for (si, s) in subnets.iter().enumerate() {
        for ((lo, hi), a) in &s.pool_access {
            if a.allow.is_empty() {
                continue;
            }
            let reachable = a.allow.iter().any(|i| {
                let c = &classes.classes[i];
                let on_link = c.giaddr().is_none_or(|g| {
                    subnets
                        .iter()
                        .filter(|o| o.same_network(s))
                        .any(|o| o.net.contains(&g.network()) || g.contains(&o.net.network()))
                });
                !a.deny.contains(i) && !never.contains(i) && on_link
            });
            if !reachable {
                warnings.push(format!(
                    "subnet[{si}] pool {}-{}: no class in its allow list can reach it (each is denied too, can never match, or needs a giaddr outside the subnet's network)",
                    Ipv4Addr::from(*lo),
                    Ipv4Addr::from(*hi)
                ));
            }
        }
    }
}

impl SubnetConfig {
    fn validate(&self, i: usize, text: &str, classes: &ClientClasses) -> Result<Subnet, ConfigError> {
        let key = |k: &str| format!("subnet[{i}].{k}");
        let net: Ipv4Net = match self.subnet.get_ref().parse() {
            Ok(n) => n,
            Err(_) => {
                return err(key("subnet"), text, Some(self.subnet.span()), "expected an IPv4 prefix like 10.0.0.0/24");
            }
        };
        let net = net.trunc();
        let shared_network = match &self.shared_network {
            Some(n) if n.get_ref().trim().is_empty() => {
                return err(key("shared-network"), text, Some(n.span()), "must not be empty");
            }
            Some(n) => Some(n.get_ref().trim().to_string()),
            None => None,
        };
        let mut pools = Vec::new();
        for (j, p) in self.pools.iter().enumerate() {
            let (s, e) = (*p.start.get_ref(), *p.end.get_ref());
            if !net.contains(&s) {
                return err(
                    key(&format!("pools[{j}].start")),
                    text,
                    Some(p.start.span()),
                    format!("{s} is outside {net}"),
                );
            }
            if !net.contains(&e) {
                return err(key(&format!("pools[{j}].end")), text, Some(p.end.span()), format!("{e} is outside {net}"));
            }
            if u32::from(s) > u32::from(e) {
                return err(
                    key(&format!("pools[{j}].end")),
                    text,
                    Some(p.end.span()),
                    format!("{e} is before start {s}"),
                );
            }
            pools.push((u32::from(s), u32::from(e)));
        }
        pools.sort();
        if let Some(w) = pools.windows(2).find(|w| w[1].0 <= w[0].1) {
            return err(key("pools"), text, None, format!("pools overlap at {}", Ipv4Addr::from(w[1].0)));
        }
        for x in &self.exclude {
            if !net.contains(x.get_ref()) {
                return err(key("exclude"), text, Some(x.span()), format!("{} is outside {net}", x.get_ref()));
            }
        }
        if self.lease_time == 0 {
            return err(key("lease-time"), text, None, "must be at least 1 second");
        }
        let renewal_time = self.renewal_time.unwrap_or(self.lease_time / 2);
        let rebinding_time = self.rebinding_time.unwrap_or((self.lease_time as u64 * 7 / 8) as u32);
        if !(renewal_time <= rebinding_time && rebinding_time <= self.lease_time) {
            return err(key("rebinding-time"), text, None, "need renewal-time <= rebinding-time <= lease-time");
        }
        let level = |o: &OptionsConfig, at: String| {
            o.encode_set().map_err(|(k, m)| ConfigError { key: key(&format!("{at}.{k}")), line: None, message: m })
        };
        let mut options = level(&self.options, "options".into())?;
        // Every reply carries the subnet mask unless the file gives option 1 by code.
        if !options.options.iter().any(|(c, _)| *c == code::SUBNET_MASK) {
            options.options.insert(0, (code::SUBNET_MASK, net.netmask().octets().to_vec()));
        }
        let mut pool_options = Vec::new();
        let mut pool_access = Vec::new();
        for (j, p) in self.pools.iter().enumerate() {
            let range = (u32::from(*p.start.get_ref()), u32::from(*p.end.get_ref()));
            let set = level(&p.options, format!("pools[{j}].options"))?;
            if !set.is_empty() {
                pool_options.push((range, set));
            }
            let access = PoolAccess {
                allow: class_names(&p.allow, classes, key(&format!("pools[{j}].allow")), text)?,
                deny: class_names(&p.deny, classes, key(&format!("pools[{j}].deny")), text)?,
            };
            if access != PoolAccess::OPEN {
                pool_access.push((range, access));
            }
        }
        pool_access.sort_by_key(|(r, _)| *r);
        let mut reservations = Vec::new();
        for (j, r) in self.reservations.iter().enumerate() {
            let rk = |k: &str| key(&format!("reservation[{j}].{k}"));
            if !net.contains(r.ip.get_ref()) {
                return err(rk("ip"), text, Some(r.ip.span()), format!("{} is outside {net}", r.ip.get_ref()));
            }
            let hw = match &r.hw_address {
                Some(h) => match parse_hex(h.get_ref()) {
                    Some(b) if b.len() <= 16 => Some(b),
                    _ => {
                        return err(
                            rk("hw-address"),
                            text,
                            Some(h.span()),
                            "expected a hardware address like 02:00:00:00:00:01",
                        );
                    }
                },
                None => None,
            };
            let cid = match &r.client_id {
                Some(h) => match parse_hex(h.get_ref()) {
                    Some(b) if b.len() >= 2 => Some(b),
                    _ => return err(rk("client-id"), text, Some(h.span()), "expected at least 2 octets of hex"),
                },
                None => None,
            };
            let port_key =
                |v: &Option<Spanned<String>>, k: &str| v.as_ref().map(|v| octets_value(v, rk(k), text)).transpose();
            let circuit_id = port_key(&r.circuit_id, "circuit-id")?;
            let remote_id = port_key(&r.remote_id, "remote-id")?;
            if hw.is_none() && cid.is_none() && circuit_id.is_none() && remote_id.is_none() {
                return err(
                    rk("ip"),
                    text,
                    Some(r.ip.span()),
                    "a reservation needs hw-address, client-id, circuit-id or remote-id",
                );
            }
            if let Some(g) = &r.giaddr
                && circuit_id.is_none()
                && remote_id.is_none()
            {
                return err(rk("giaddr"), text, Some(g.span()), "only used with circuit-id or remote-id");
            }
            let giaddr = r.giaddr.as_ref().map(|g| *g.get_ref());
            let name = r.name.clone().unwrap_or_else(|| format!("reservation {}", r.ip.get_ref()));
            let options = level(&r.options, format!("reservation[{j}].options"))?;
            reservations.push(Reservation {
                ip: *r.ip.get_ref(),
                hw_address: hw,
                client_id: cid,
                circuit_id,
                remote_id,
                giaddr,
                name,
                options,
            });
        }
        Ok(Subnet {
            net,
            interface: self.interface.clone(),
            shared_network,
            pools,
            exclude: self.exclude.iter().map(|x| *x.get_ref()).collect(),
            lease_time: self.lease_time,
            renewal_time,
            rebinding_time,
            options,
            pool_options,
            pool_access,
            reservations,
        })
    }
}

/// RFC 3442 §3: a client that receives option 121 ignores option 3, so a subnet (or a pool or reservation
/// over it) that gives routers and static routes without a default route among them leaves such clients with
/// no default route. Worth a warning, not an error (the operator may mean it).
fn static_route_warnings(subnets: &[Subnet], warnings: &mut Vec<String>) {
    use leasewire_proto::options::code::CLASSLESS_STATIC_ROUTES;
    let get = |sets: &[&OptionSet], c: u8| {
        sets.iter().rev().find_map(|s| s.options.iter().find(|(x, _)| *x == c).map(|(_, d)| d.clone()))
    };
    for (i, s) in subnets.iter().enumerate() {
        let mut levels: Vec<(String, Vec<&OptionSet>)> = vec![(format!("subnet[{i}]"), vec![&s.options])];
        for ((lo, hi), p) in &s.pool_options {
            let name = format!("subnet[{i}] pool {}-{}", Ipv4Addr::from(*lo), Ipv4Addr::from(*hi));
            levels.push((name, vec![&s.options, p]));
        }
        for r in &s.reservations {
            levels.push((format!("subnet[{i}] reservation {}", r.ip), vec![&s.options, &r.options]));
        }
        for (name, sets) in levels {
            let (Some(_), Some(routes)) = (get(&sets, code::ROUTERS), get(&sets, CLASSLESS_STATIC_ROUTES)) else {
                continue;
            };
            if !has_default_route(&routes) {
                warnings.push(format!(
                    "{name}: classless-static-routes (option 121) has no 0.0.0.0/0 route but routers is set; clients that take option 121 ignore routers (RFC 3442 §3), so add the default route to classless-static-routes"
                ));
            }
        }
    }
}

/// Whether encoded option 121 holds a route of width 0.
fn has_default_route(mut data: &[u8]) -> bool {
    while let Some(&width) = data.first() {
        if width == 0 {
            return true;
        }
        let len = 1 + usize::from(width).div_ceil(8) + 4;
        data = data.get(len..).unwrap_or_default();
    }
    false
}

/// The subnets of one shared network are on one link: for directly connected clients, one interface.
fn check_shared_networks(subnets: &[Subnet], raw: &Config, text: &str) -> Result<(), ConfigError> {
    for (j, b) in subnets.iter().enumerate() {
        let Some(name) = &b.shared_network else { continue };
        if let Some((i, a)) = subnets[..j]
            .iter()
            .enumerate()
            .find(|(_, a)| a.shared_network.as_ref() == Some(name) && a.interface != b.interface)
        {
            let span = raw.subnets[j].shared_network.as_ref().map(|n| n.span());
            return err(
                format!("subnet[{j}].interface"),
                text,
                span,
                format!(
                    "shared network {name:?} is one link: subnet[{i}] is on interface {:?}, this one on {:?}",
                    a.interface.as_deref().unwrap_or("(relayed)"),
                    b.interface.as_deref().unwrap_or("(relayed)")
                ),
            );
        }
    }
    Ok(())
}

fn check_overlaps(subnets: &[Subnet], raw: &Config, text: &str) -> Result<(), ConfigError> {
    for (i, a) in subnets.iter().enumerate() {
        for (j, b) in subnets.iter().enumerate().skip(i + 1) {
            if a.net.contains(&b.net.network()) || b.net.contains(&a.net.network()) {
                let span = raw.subnets[j].subnet.span();
                return err(
                    format!("subnet[{j}].subnet"),
                    text,
                    Some(span),
                    format!("{} overlaps subnet[{i}] {}", b.net, a.net),
                );
            }
        }
    }
    Ok(())
}
