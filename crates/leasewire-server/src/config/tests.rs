//! Tests of parsing, validation and the summary.

use super::*;
use std::net::SocketAddr;

const GOOD: &str = test_config!(
    r#"
[[subnet]]
subnet = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.199" }]
lease-time = 600
[subnet.options]
routers = ["10.0.0.1"]
"66" = "tftp.example"
"43" = "hex:0102"
[[subnet.reservation]]
ip = "10.0.0.5"
hw-address = "02:00:00:00:00:05"
"#
);

#[test]
fn a_good_file_parses_with_defaults() {
    let v = Config::parse(GOOD).unwrap();
    assert_eq!(v.raw.server.listen, default_listen());
    let s = &v.subnets[0];
    assert_eq!(s.pools, vec![(u32::from(Ipv4Addr::new(10, 0, 0, 100)), u32::from(Ipv4Addr::new(10, 0, 0, 199)))]);
    assert_eq!((s.renewal_time, s.rebinding_time), (300, 525));
    let codes: Vec<u8> = s.options.options.iter().map(|o| o.0).collect();
    assert_eq!(codes, vec![1, 3, 43, 66]);
    assert_eq!(s.reservations[0].hw_address, Some(vec![2, 0, 0, 0, 0, 5]));
}

#[test]
fn blq_6_3_1_bulk_leasequery_listens_on_port_67_by_default_and_the_port_is_configurable() {
    let v = Config::parse(GOOD).unwrap();
    assert_eq!(v.raw.bulk_leasequery.listen, vec!["0.0.0.0:67".parse::<SocketAddr>().unwrap()], "BLQ-6.3-2");
    let other = format!("{GOOD}\n[bulk-leasequery]\nlisten = [\"127.0.0.1:6767\"]\n");
    let v = Config::parse(&other).unwrap();
    assert_eq!(v.raw.bulk_leasequery.listen, vec!["127.0.0.1:6767".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn the_store_is_sqlite_unless_postgres_is_chosen_and_its_keys_are_checked() {
    assert_eq!(Config::parse(GOOD).unwrap().store, StoreChoice::Sqlite);
    let with = |store: &str| {
        GOOD.replace("data-dir = \"/nonexistent\"\n", &format!("data-dir = \"/nonexistent\"\nstore = {store}\n"))
    };
    assert_eq!(Config::parse(&with(r#"{ kind = "sqlite" }"#)).unwrap().store, StoreChoice::Sqlite);
    let v =
        Config::parse(&with(r#"{ kind = "postgres", url = "host=/run/postgresql dbname=leases", start-at = 0.5 }"#))
            .unwrap();
    assert_eq!(
        v.store,
        StoreChoice::Postgres {
            url: "host=/run/postgresql dbname=leases".into(),
            name: "10.0.0.1".into(),
            start_at: 0.5,
            pool_size: 8,
            tls: None,
        }
    );
    for (store, key) in [
        (r#"{ kind = "postgres" }"#, "server.store.url"),
        (r#"{ kind = "mysql", url = "x" }"#, "server.store.kind"),
        (r#"{ kind = "sqlite", url = "x" }"#, "server.store.url"),
        (r#"{ kind = "postgres", url = "x", start-at = 1.0 }"#, "server.store.start-at"),
        (r#"{ kind = "postgres", url = "x", name = "" }"#, "server.store.name"),
        (r#"{ kind = "postgres", url = "x", pool-size = 0 }"#, "server.store.pool-size"),
        (r#"{ kind = "sqlite", ca = "/ca.pem" }"#, "server.store.ca"),
        (r#"{ kind = "postgres", url = "x", ca = "/ca.pem", cert = "/c.pem" }"#, "server.store.key"),
        (r#"{ kind = "postgres", url = "x", ca = "/ca.pem", key = "/k.pem" }"#, "server.store.cert"),
        (r#"{ kind = "postgres", url = "x", cert = "/c.pem", key = "/k.pem" }"#, "server.store.ca"),
        (r#"{ kind = "postgres", url = "host=/run/postgresql", ca = "/ca.pem" }"#, "server.store.ca"),
    ] {
        let e = Config::parse(&with(store)).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), (key, Some(5)), "{store}: {e}");
    }
    let v =
        Config::parse(&with(r#"{ kind = "postgres", url = "x", ca = "/ca.pem", cert = "/c.pem", key = "/k.pem" }"#))
            .unwrap();
    let StoreChoice::Postgres { tls, .. } = v.store else { panic!("postgres") };
    let client = Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")));
    assert_eq!(tls, Some(StoreTls { ca: "/ca.pem".into(), client }));
    // data-dir: required by the embedded store only.
    let without_dir = |store: &str| with(store).replace("data-dir = \"/nonexistent\"\n", "");
    let e = Config::parse(&without_dir(r#"{ kind = "sqlite" }"#)).unwrap_err();
    assert_eq!(e.key, "server.data-dir", "{e}");
    let e = Config::parse(&GOOD.replace("data-dir = \"/nonexistent\"\n", "")).unwrap_err();
    assert_eq!(e.key, "server.data-dir", "{e}");
    let v = Config::parse(&without_dir(r#"{ kind = "postgres", url = "x" }"#)).unwrap();
    assert!(v.raw.server.data_dir.is_none() && !v.summary().contains("data-dir"));
    let e = Config::parse(&with(r#"{ kind = "postgres", url = "x", colour = 1 }"#)).unwrap_err();
    assert!(e.to_string().contains("colour") && e.line == Some(5), "{e}");
}

#[test]
fn errors_name_the_key_and_line() {
    let bad = GOOD.replace("end = \"10.0.0.199\"", "end = \"10.0.1.199\"");
    let e = Config::parse(&bad).unwrap_err();
    assert_eq!(e.key, "subnet[0].pools[0].end");
    assert_eq!(e.line, Some(8));
    assert!(e.to_string().starts_with("line 8: subnet[0].pools[0].end: 10.0.1.199 is outside"));

    let e = Config::parse(&GOOD.replace("lease-time", "lease-tme")).unwrap_err();
    assert_eq!(e.line, Some(9), "{e}");
    assert!(e.message.contains("lease-tme"), "{e}");

    let e = Config::parse(&GOOD.replace("hw-address = \"02:00:00:00:00:05\"", "hw-address = \"zz\"")).unwrap_err();
    assert_eq!(e.key, "subnet[0].reservation[0].hw-address");
}

/// ALQ-8.1-2, ALQ-8.1-3, ALQ-8.1-4, ALQ-8.1-5: off by default; both modes; secure the default; insecure only by its
/// own setting.
#[test]
fn alq_8_1_active_leasequery_off_by_default_and_insecure_needs_its_own_setting() {
    let v = Config::parse(GOOD).unwrap();
    assert!(!v.raw.active_leasequery.enabled);
    let bulk = "[bulk-leasequery]\nallow = [\"10.0.0.0/24\"]\n";
    let e = Config::parse(&format!("{GOOD}{bulk}[active-leasequery]\nenabled = true\n")).unwrap_err();
    assert_eq!(e.key, "active-leasequery.tls", "secure mode is the default and needs TLS settings");
    let v = Config::parse(&format!(
        "{GOOD}{bulk}[active-leasequery]\nenabled = true\ninsecure = true\nidle-timeout = 30\n"
    ))
    .unwrap();
    assert!(v.raw.active_leasequery.enabled);
    assert!(v.warnings.iter().any(|w| w.contains("idle-timeout = 30")), "ALQ-5.3-4: {:?}", v.warnings);
    assert!(v.summary().contains("active leasequery ON, insecure mode"));
}

#[test]
fn robustness_keys_are_validated_and_summarised() {
    let bulk = "[bulk-leasequery]\nallow = [\"10.0.0.0/24\"]\n";
    let v = Config::parse(&format!("{GOOD}{bulk}")).unwrap();
    let b = &v.raw.bulk_leasequery;
    assert_eq!((b.max_pending_connections, b.pre_auth_timeout), (32, 10));
    assert!(v.summary().contains("32 waiting for a first query, for at most 10 s"), "{}", v.summary());
    for (extra, key) in [
        ("pre-auth-timeout = 0\n", "bulk-leasequery.pre-auth-timeout"),
        ("pre-auth-timeout = 301\n", "bulk-leasequery.pre-auth-timeout"),
        ("max-pending-connections = 0\n", "bulk-leasequery.max-pending-connections"),
    ] {
        assert_eq!(Config::parse(&format!("{GOOD}{bulk}{extra}")).unwrap_err().key, key, "{extra}");
    }
    let server =
        |extra: &str| GOOD.replace("data-dir = \"/nonexistent\"", &format!("data-dir = \"/nonexistent\"\n{extra}"));
    let v = Config::parse(&server("user = \"nobody\"\nmax-offers-per-circuit = 8")).unwrap();
    assert!(v.summary().contains("runs as nobody") && v.summary().contains("8 per relay circuit, no limit per relay"));
    assert_eq!(Config::parse(&server("group = \"nogroup\"")).unwrap_err().key, "server.group");
    assert_eq!(Config::parse(&server("user = \"a b\"")).unwrap_err().key, "server.user");
}

#[test]
fn overlapping_subnets_are_rejected() {
    let two = format!("{GOOD}\n[[subnet]]\nsubnet = \"10.0.0.128/25\"\n");
    let e = Config::parse(&two).unwrap_err();
    assert_eq!(e.key, "subnet[1].subnet");
}

/// BLQ-9-6: `[[bulk-leasequery.requestor]] query-types` restricts what requestors in a prefix may ask; the
/// most specific prefix wins, requestors no rule covers may ask anything, and an unknown type is named.
#[test]
fn blq_9_6_query_types_per_requestor_prefix() {
    use leasewire_proto::session::server::QueryTypes;
    let bulk = "[bulk-leasequery]\nallow = [\"10.0.0.0/8\"]\n\
                [[bulk-leasequery.requestor]]\nprefix = \"10.9.0.0/16\"\nquery-types = [\"mac\", \"active\"]\n\
                [[bulk-leasequery.requestor]]\nprefix = \"10.9.1.1\"\nquery-types = [\"all\"]\n";
    let v = Config::parse(&format!("{GOOD}{bulk}")).unwrap();
    let at = |a: [u8; 4]| v.query_types_for(Ipv4Addr::from(a));
    assert_eq!(at([10, 9, 0, 5]), QueryTypes::MAC.with(QueryTypes::ACTIVE));
    assert_eq!(at([10, 9, 1, 1]), QueryTypes::ALL_ADDRESSES);
    assert_eq!(at([10, 1, 0, 1]), QueryTypes::EVERY);
    let bad = "[bulk-leasequery]\nallow = [\"10.0.0.0/8\"]\n[[bulk-leasequery.requestor]]\nprefix = \"10.9.0.0/16\"\n\
               query-types = [\"by-ip\"]\n";
    let e = Config::parse(&format!("{GOOD}{bad}")).unwrap_err();
    assert_eq!(e.key, "bulk-leasequery.requestor[0].query-types");
    assert!(e.message.contains("by-ip") && e.message.contains("client-id"), "{}", e.message);
}

/// Typed options are checked at load; an error names the key down to the entry.
#[test]
fn typed_options_errors_name_the_key() {
    let with = |opts: &str| GOOD.replace("routers = [\"10.0.0.1\"]", opts);
    let cases = [
        (
            r#"classless-static-routes = [{ destination = "10.1.2.3/16", router = "10.0.0.1" }]"#,
            "subnet[0].options.classless-static-routes[0].destination",
        ),
        (
            r#"classless-static-routes = [{ destination = "10.1.0.0/16", router = "10.0.0.1" }, { destination = "nope", router = "10.0.0.1" }]"#,
            "subnet[0].options.classless-static-routes[1].destination",
        ),
        (r#"domain-search = ["ok.example", "bad..example"]"#, "subnet[0].options.domain-search[1]"),
        ("interface-mtu = 60", "subnet[0].options.interface-mtu"),
        (&format!("boot-file = \"{}\"", "x".repeat(128)), "subnet[0].options.boot-file"),
        (r#"vendor-encapsulated-options = { "0" = "x" }"#, "subnet[0].options.vendor-encapsulated-options.0"),
        (
            r#"vendor-identifying-options = [{ enterprise-number = 1, sub-options = { "300" = "x" } }]"#,
            "subnet[0].options.vendor-identifying-options[0].sub-options.300",
        ),
    ];
    for (opts, key) in cases {
        let e = Config::parse(&with(opts)).unwrap_err();
        assert_eq!(e.key, key, "{opts}: {e}");
    }
    let pool =
        GOOD.replace(r#"end = "10.0.0.199" }"#, r#"end = "10.0.0.199", options = { domain-search = ["a..b"] } }"#);
    assert_eq!(Config::parse(&pool).unwrap_err().key, "subnet[0].pools[0].options.domain-search[0]");
    let res = format!("{GOOD}[subnet.reservation.options]\ninterface-mtu = 1\n");
    assert_eq!(Config::parse(&res).unwrap_err().key, "subnet[0].reservation[0].options.interface-mtu");
}

/// RFC 3442 §3: clients that take option 121 ignore option 3, so routers without a default static route
/// gets a warning; with one, none.
#[test]
fn rfc3442_routers_without_a_default_static_route_warn() {
    let route = |d: &str| {
        GOOD.replace(
            "\"66\" = ",
            &format!("classless-static-routes = [{{ destination = \"{d}\", router = \"10.0.0.1\" }}]\n\"66\" = "),
        )
    };
    let v = Config::parse(&route("10.5.0.0/16")).unwrap();
    assert!(v.warnings.iter().any(|w| w.contains("RFC 3442")), "{:?}", v.warnings);
    let v = Config::parse(&route("0.0.0.0/0")).unwrap();
    assert!(!v.warnings.iter().any(|w| w.contains("RFC 3442")), "{:?}", v.warnings);
}

/// `ctl config show` prints the effective file; with typed options at every level it reads back the same.
#[test]
fn typed_options_survive_config_show() {
    let text =
        GOOD.replace(
            r#"end = "10.0.0.199" }"#,
            r#"end = "10.0.0.199", options = { ntp-servers = ["10.0.0.9"], boot-file = "a.efi" } }"#,
        )
        .replace(
            "\"66\" = ",
            "classless-static-routes = [{ destination = \"0.0.0.0/0\", router = \"10.0.0.1\" }]\n\
             vendor-identifying-options = [{ enterprise-number = 9, sub-options = { \"1\" = \"x\" } }]\n\
             domain-search = [\"a.example\"]\ntime-offset = -5\n\"66\" = ",
        ) + "[subnet.reservation.options]\nnext-server = \"10.0.0.70\"\n";
    let v = Config::parse(&text).unwrap();
    let again = Config::parse(&v.to_toml()).unwrap_or_else(|e| panic!("{e}\n{}", v.to_toml()));
    assert_eq!(again.subnets[0].options, v.subnets[0].options);
    assert_eq!(again.subnets[0].pool_options, v.subnets[0].pool_options);
    assert_eq!(again.subnets[0].reservations, v.subnets[0].reservations);
    assert_eq!(v.subnets[0].pool_options.len(), 1);
    assert_eq!(v.subnets[0].reservations[0].options.next_server, Some(Ipv4Addr::new(10, 0, 0, 70)));
}

/// Reservations by option 82: checked at load, errors naming the key.
#[test]
fn reservations_by_port_are_checked() {
    let with = |r: &str| format!("{GOOD}[[subnet.reservation]]\nip = \"10.0.0.6\"\n{r}\n");
    let v = Config::parse(&with("circuit-id = \"hex:0001\"\nremote-id = \"cpe\"\ngiaddr = \"10.0.0.2\"")).unwrap();
    let r = &v.subnets[0].reservations[1];
    assert_eq!((r.circuit_id.as_deref(), r.remote_id.as_deref()), (Some(&[0, 1][..]), Some(&b"cpe"[..])));
    assert_eq!(r.giaddr, Some(Ipv4Addr::new(10, 0, 0, 2)));
    for (r, key) in [
        ("giaddr = \"10.0.0.2\"\nhw-address = \"02:00:00:00:00:06\"", "subnet[0].reservation[1].giaddr"),
        ("circuit-id = \"hex:zz\"", "subnet[0].reservation[1].circuit-id"),
        ("remote-id = \"\"", "subnet[0].reservation[1].remote-id"),
        ("name = \"nobody\"", "subnet[0].reservation[1].ip"),
    ] {
        assert_eq!(Config::parse(&with(r)).unwrap_err().key, key, "{r}");
    }
}

/// GOOD with `[[client-class]]` tables before its subnet and `pool` (extra pool keys) in place of its pool.
fn with_classes(classes: &str, pool: &str) -> String {
    let text = GOOD.replace(
        "pools = [{ start = \"10.0.0.100\", end = \"10.0.0.199\" }]",
        &format!("pools = [{{ start = \"10.0.0.100\", end = \"10.0.0.199\"{pool} }}]"),
    );
    text.replace("[[subnet]]", &format!("{classes}\n[[subnet]]"))
}

#[test]
fn client_class_errors_name_the_key() {
    let key = |classes: &str, pool: &str| Config::parse(&with_classes(classes, pool)).unwrap_err().key;
    let phones = "[[client-class]]\nname = \"phones\"\nvendor-class-prefix = \"Polycom\"\n";
    assert_eq!(key(phones, ", allow = [\"phones\", \"pcs\"]"), "subnet[0].pools[0].allow[1]");
    assert_eq!(key(phones, ", deny = [\"nope\"]"), "subnet[0].pools[0].deny[0]");
    assert_eq!(key(&format!("{phones}{phones}"), ""), "client-class[1].name");
    assert_eq!(key("[[client-class]]\nname = \"empty\"\n", ""), "client-class[0]");
    assert_eq!(key("[[client-class]]\nname = \"\"\nuser-class = \"x\"\n", ""), "client-class[0].name");
    assert_eq!(key("[[client-class]]\nname = \"m\"\nmac-prefix = \"zz\"\n", ""), "client-class[0].mac-prefix");
    assert_eq!(key("[[client-class]]\nname = \"g\"\ngiaddr = \"10.0.0.0/33\"\n", ""), "client-class[0].giaddr");
    assert_eq!(key("[[client-class]]\nname = \"c\"\ncircuit-id = \"hex:zz\"\n", ""), "client-class[0].circuit-id");
    assert_eq!(key("[[client-class]]\nname = \"v\"\nvendor-class = \"\"\n", ""), "client-class[0].vendor-class");
    let bad_option = "[[client-class]]\nname = \"o\"\nremote-id = \"r\"\noptions = { interface-mtu = 10 }\n";
    assert_eq!(key(bad_option, ""), "client-class[0].options.interface-mtu");
    let typo = "[[client-class]]\nname = \"t\"\nvendor-clas = \"x\"\n";
    assert!(key(typo, "").starts_with("client-class"), "unknown keys are errors");
}

#[test]
fn client_classes_compile_to_conditions_and_pool_access() {
    let classes = "[[client-class]]\nname = \"pxe\"\nvendor-class-prefix = \"PXEClient\"\nmac-prefix = \"00:1a:2b\"\ngiaddr = \"10.0.0.2\"\n\
                   [[client-class]]\nname = \"cpe\"\nremote-id = \"hex:0102\"\n";
    let v = Config::parse(&with_classes(classes, ", allow = [\"pxe\"], deny = [\"cpe\"]")).unwrap();
    let pxe = &v.classes.classes[0];
    assert_eq!(pxe.conditions.len(), 3);
    assert_eq!(pxe.conditions[0], Condition::VendorClass(Pattern { octets: b"PXEClient".to_vec(), prefix: true }));
    assert_eq!(pxe.conditions[1], Condition::MacPrefix(vec![0, 0x1a, 0x2b]));
    assert_eq!(pxe.conditions[2], Condition::Giaddr("10.0.0.2/32".parse().unwrap()));
    assert_eq!(
        v.classes.classes[1].conditions,
        vec![Condition::RemoteId(Pattern { octets: vec![1, 2], prefix: false })]
    );
    let access =
        v.subnets[0].access_of((u32::from(Ipv4Addr::new(10, 0, 0, 100)), u32::from(Ipv4Addr::new(10, 0, 0, 199))));
    assert!(access.allow.contains(0) && !access.allow.contains(1) && access.deny.contains(1));
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
}

/// `check-config` reports a class nothing uses, a class that can never match, and a pool whose allow list
/// no client can satisfy.
#[test]
fn check_config_reports_unused_and_unmatchable_classes_and_unreachable_pools() {
    let summary = |classes: &str, pool: &str| Config::parse(&with_classes(classes, pool)).unwrap().summary();
    let unused = "[[client-class]]\nname = \"idle\"\nuser-class = \"x\"\n";
    assert!(summary(unused, "").contains("client-class \"idle\" is in no pool's allow or deny and sets no options"));
    let never = "[[client-class]]\nname = \"never\"\nvendor-class = \"abc\"\nvendor-class-prefix = \"x\"\n";
    let s = summary(never, ", allow = [\"never\"]");
    assert!(s.contains("client-class \"never\" can never match"), "{s}");
    assert!(s.contains("subnet[0] pool 10.0.0.100-10.0.0.199: no class in its allow list can reach it"), "{s}");
    let both = "[[client-class]]\nname = \"a\"\nuser-class = \"x\"\n";
    let s = summary(both, ", allow = [\"a\"], deny = [\"a\"]");
    assert!(s.contains("no class in its allow list can reach it"), "allowed and denied: {s}");
    let elsewhere = "[[client-class]]\nname = \"far\"\ngiaddr = \"192.0.2.0/24\"\n";
    let s = summary(elsewhere, ", allow = [\"far\"]");
    assert!(s.contains("no class in its allow list can reach it"), "relays off the subnet: {s}");
    let fine = "[[client-class]]\nname = \"near\"\ngiaddr = \"10.0.0.0/16\"\n";
    assert!(!summary(fine, ", allow = [\"near\"]").contains("warning"), "a giaddr prefix around the subnet is fine");
}

#[test]
fn shared_networks_are_checked_and_summarised() {
    let two = |a: &str, b: &str| {
        format!(
            "[server]\nserver-id = \"10.0.0.1\"\ndata-dir = \"/x\"\n\
             [[subnet]]\nsubnet = \"10.0.0.0/24\"\n{a}\n[[subnet]]\nsubnet = \"10.1.0.0/24\"\n{b}\n"
        )
    };
    let v = Config::parse(&two("shared-network = \"campus\"", "shared-network = \"campus\"")).unwrap();
    assert!(v.subnets[0].same_network(&v.subnets[1]));
    assert!(v.summary().contains("shared network \"campus\": 10.0.0.0/24, 10.1.0.0/24"), "{}", v.summary());
    let v = Config::parse(&two("shared-network = \"a\"", "shared-network = \"b\"")).unwrap();
    assert!(!v.subnets[0].same_network(&v.subnets[1]));
    let e = Config::parse(&two("shared-network = \"\"", "")).unwrap_err();
    assert_eq!(e.key, "subnet[0].shared-network");
    let e = Config::parse(&two(
        "shared-network = \"lan\"\ninterface = \"eth1\"",
        "shared-network = \"lan\"\ninterface = \"eth2\"",
    ))
    .unwrap_err();
    assert_eq!(e.key, "subnet[1].interface");
    assert!(e.message.contains("one link"), "{}", e.message);
}

/// `leasewire ctl config show` prints what is in effect: classes, pool access and shared networks read back
/// the same.
#[test]
fn classes_and_shared_networks_survive_config_show() {
    let classes = "[[client-class]]\nname = \"pxe\"\nvendor-class-prefix = \"PXEClient\"\ngiaddr = \"10.0.0.0/24\"\n\
                   options = { boot-file = \"ipxe.efi\" }\n";
    let text = with_classes(classes, ", allow = [\"pxe\"]")
        .replace("subnet = \"10.0.0.0/24\"", "subnet = \"10.0.0.0/24\"\nshared-network = \"campus\"");
    let v = Config::parse(&text).unwrap();
    let again = Config::parse(&v.to_toml()).unwrap();
    assert_eq!(again.classes, v.classes);
    assert_eq!(again.subnets[0].pool_access, v.subnets[0].pool_access);
    assert_eq!(again.subnets[0].shared_network.as_deref(), Some("campus"));
}
