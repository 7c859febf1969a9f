//! What a configuration enables, in a few lines for `leasewire check-config`.

use super::{StoreChoice, StoreTls, Validated};

impl Validated {
    /// A human summary of what this configuration enables (for `check-config`).
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let s = &self.raw.server;
        let mut out = String::new();
        match &s.data_dir {
            Some(dir) => {
                let _ = writeln!(out, "server-id {} data-dir {}", s.server_id, dir.display());
            }
            None => {
                let _ = writeln!(out, "server-id {}", s.server_id);
            }
        }
        match &self.store {
            StoreChoice::Sqlite => {
                let _ = writeln!(out, "lease store: embedded SQLite in the data directory");
            }
            StoreChoice::Postgres { name, start_at, tls, .. } => {
                let tls = match tls {
                    Some(StoreTls { ca, client: Some(_) }) => {
                        format!("TLS required (CA {}, client certificate)", ca.display())
                    }
                    Some(StoreTls { ca, client: None }) => format!("TLS required (CA {})", ca.display()),
                    None => "no TLS (set server.store.ca unless the database is on a Unix socket)".into(),
                };
                let _ = writeln!(
                    out,
                    "lease store: shared PostgreSQL as {name:?}, allocating from {:.0}% of each pool; {tls}",
                    start_at * 100.0
                );
            }
        }
        let listen: Vec<String> = s.listen.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(
            out,
            "DHCP on UDP {}{}",
            listen.join(", "),
            if s.interfaces.is_empty() {
                String::new()
            } else {
                format!(" and interfaces {}", s.interfaces.join(", "))
            }
        );
        for sn in &self.subnets {
            let size: u64 = sn.pools.iter().map(|(a, b)| (*b - *a) as u64 + 1).sum();
            let _ = writeln!(
                out,
                "subnet {}: {} pool address(es), {} reservation(s), lease {} s{}",
                sn.net,
                size,
                sn.reservations.len(),
                sn.lease_time,
                sn.shared_network.as_ref().map(|n| format!(", shared network {n:?}")).unwrap_or_default()
            );
        }
        let mut networks: Vec<&str> = self.subnets.iter().filter_map(|s| s.shared_network.as_deref()).collect();
        networks.dedup();
        networks.sort_unstable();
        networks.dedup();
        for n in networks {
            let members: Vec<String> = self
                .subnets
                .iter()
                .filter(|s| s.shared_network.as_deref() == Some(n))
                .map(|s| s.net.to_string())
                .collect();
            let _ = writeln!(out, "shared network {n:?}: {} (allocation in this order)", members.join(", "));
        }
        if !self.classes.classes.is_empty() {
            let names: Vec<&str> = self.classes.classes.iter().map(|c| c.name.as_str()).collect();
            let _ = writeln!(out, "client classes: {}", names.join(", "));
        }
        if self.leasequery_allow.is_empty() {
            let _ = writeln!(out, "leasequery (UDP) off");
        } else {
            let allow: Vec<String> = self.leasequery_allow.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(
                out,
                "leasequery (UDP) for {}, {} queries/s per requestor",
                allow.join(", "),
                self.raw.leasequery.rate_limit
            );
        }
        if self.bulk_allow.is_empty() {
            let _ = writeln!(out, "bulk leasequery (TCP) off");
        } else {
            let b = &self.raw.bulk_leasequery;
            let listen: Vec<String> = b.listen.iter().map(|a| a.to_string()).collect();
            let allow: Vec<String> = self.bulk_allow.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(
                out,
                "bulk leasequery (TCP) on {} for {}, at most {} connections ({} per requestor), data timeout {} s; {} waiting for a first query, for at most {} s",
                listen.join(", "),
                allow.join(", "),
                b.max_connections,
                b.max_connections_per_requestor,
                b.data_timeout,
                b.max_pending_connections,
                b.pre_auth_timeout
            );
        }
        let srv = &self.raw.server;
        if srv.max_offers_per_circuit > 0 || srv.max_offers_per_relay > 0 {
            let limit = |n: usize| if n == 0 { "no limit".to_string() } else { n.to_string() };
            let _ = writeln!(
                out,
                "offers to new clients: {} per relay circuit, {} per relay",
                limit(srv.max_offers_per_circuit),
                limit(srv.max_offers_per_relay)
            );
        }
        if let Some(u) = &srv.user {
            let _ = writeln!(out, "runs as {u} once its sockets are bound");
        }
        let a = &self.raw.active_leasequery;
        if a.enabled {
            let mode = match (&a.tls, a.insecure) {
                (Some(t), false) => format!("secure mode (TLS required, client certificates from {})", t.ca.display()),
                (Some(_), true) => "TLS offered, insecure mode allowed".to_string(),
                (None, _) => "insecure mode (no TLS)".to_string(),
            };
            let _ = writeln!(
                out,
                "active leasequery ON, {mode}, keep-alive {} s, send timeout {} s, backlog {} addresses",
                a.idle_timeout, a.send_timeout, a.max_backlog
            );
        } else {
            let _ = writeln!(out, "active leasequery off");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        match self.raw.metrics.listen {
            Some(a) => {
                let _ = writeln!(out, "metrics on http://{a}/metrics");
            }
            None => {
                let _ = writeln!(out, "metrics off");
            }
        }
        out
    }
}
