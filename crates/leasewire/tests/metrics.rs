//! Metrics you can alert on (issue #16 item 5), through `leasewire serve`'s `/metrics`: every counter with a
//! known label set is there at zero before the first packet, and the binding gauges (AVAILABLE = pool size
//! minus the rest) and the pool utilisation follow each commit rather than a once-a-minute recount.

mod support;

use leasewire_proto::MessageType;
use leasewire_proto::options::code;
use std::net::{Ipv4Addr, SocketAddr};
use support::relay::Relay;
use support::{Server, ServerConfig, free_tcp_port, free_udp_port, http_get};

const SERVER_ID: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// The value of a sample, failing (rather than reading 0) when the series is absent.
fn sample(body: &str, series: &str) -> f64 {
    let line = body
        .lines()
        .find(|l| l.rsplit_once(' ').is_some_and(|(name, _)| name == series))
        .unwrap_or_else(|| panic!("no series {series} in\n{body}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn counters_exist_at_zero_from_start_and_binding_gauges_follow_each_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (udp, port) = (free_udp_port(), free_tcp_port());
    // 100 addresses, one excluded, one reservation outside the pool: 100 the subnet can hand out.
    let reservation =
        "exclude = [\"127.1.0.50\"]\n[[subnet.reservation]]\nip = \"127.1.1.1\"\nhw-address = \"02:00:00:00:00:99\"";
    let config = ServerConfig::new(udp).metrics(port).subnet("127.1.0.0/16", "127.1.0.1", "127.1.0.100", reservation);
    let server = Server::start(dir.path(), &config.text(), None);
    let at = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let body = http_get(at, "/metrics");
    // Counters an alert would use, present at zero before any traffic.
    for series in [
        "leasewire_dhcp_packets_dropped_total{reason=\"pool_exhausted\"}",
        "leasewire_dhcp_packets_dropped_total{reason=\"decode_error\"}",
        "leasewire_dhcp_packets_dropped_total{reason=\"leasequery_not_allowed\"}",
        "leasewire_dhcp_packets_dropped_total{reason=\"active_slow_requestor\"}",
        "leasewire_dhcp_tcp_connections_rejected_total{reason=\"tls_unknown_ca\"}",
        "leasewire_dhcp_tcp_connections_rejected_total{reason=\"max_connections\"}",
        "leasewire_dhcp_active_catch_ups_total{outcome=\"data_missing\"}",
        "leasewire_dhcp_commit_errors_total",
        "leasewire_lease_log_dropped_total",
        "leasewire_control_requests_total{command=\"leases_delete\",result=\"ok\"}",
        "leasewire_control_requests_total{command=\"reload\",result=\"error\"}",
    ] {
        assert_eq!(sample(&body, series), 0.0, "{series}");
    }
    let net = "subnet=\"127.1.0.0/16\"";
    let leases = |body: &str, state: &str| sample(body, &format!("leasewire_dhcp_leases{{{net},state=\"{state}\"}}"));
    let utilisation = |body: &str| sample(body, &format!("leasewire_dhcp_pool_utilisation_ratio{{{net}}}"));
    assert_eq!(sample(&body, &format!("leasewire_dhcp_pool_size{{{net}}}")), 100.0);
    assert_eq!(leases(&body, "AVAILABLE"), 100.0, "an empty pool is all available");
    assert_eq!(leases(&body, "ACTIVE"), 0.0);
    assert_eq!(utilisation(&body), 0.0);

    // One lease: read at once, not after the next minute's recount.
    let relay = Relay::new(SocketAddr::from((SERVER_ID, udp)), Ipv4Addr::new(127, 1, 0, 254));
    let ip = relay.dora([2, 0, 0, 0, 0, 1], 1, SERVER_ID).expect("ACK");
    let body = http_get(at, "/metrics");
    assert_eq!(leases(&body, "ACTIVE"), 1.0, "{body}");
    assert_eq!(leases(&body, "AVAILABLE"), 99.0);
    assert!((utilisation(&body) - 0.01).abs() < 1e-9, "{body}");

    // Released: no longer in use, still a record.
    let mut release = relay.request(MessageType::Release, [2, 0, 0, 0, 0, 1], 2);
    release.ciaddr = ip;
    release.options.set_ip(code::SERVER_IDENTIFIER, SERVER_ID);
    relay.send(&release);
    // A RELEASE has no reply: its commit's debug line is the sign it happened (the gauges change before it).
    server.wait_log("state=RELEASED", 10);
    let body = http_get(at, "/metrics");
    assert_eq!(leases(&body, "RELEASED"), 1.0, "{body}");
    assert_eq!(leases(&body, "ACTIVE"), 0.0, "{body}");
    assert_eq!(leases(&body, "AVAILABLE"), 99.0, "pool size minus every other state");
    assert_eq!(utilisation(&body), 0.0, "a released address can be handed out again");
    server.stop();
}

/// `dist/leasewire.rules.yml` passes `promtool check rules`, and its alerts fire on the series the server
/// exports, and only then (`promtool test rules` with synthetic series). The annotations are left out of the
/// copy the unit test runs (promtool compares them verbatim; `check rules` has checked their templates).
#[test]
fn sample_alert_rules_check_and_fire_on_the_exported_series() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/leasewire.rules.yml");
    let promtool = |args: &[&str]| {
        let out = std::process::Command::new(support::peer("promtool", "prometheus")).args(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
    };
    promtool(&["check", "rules", rules]);
    let mut bare = String::new();
    let mut skipping = false;
    for line in std::fs::read_to_string(rules).unwrap().lines() {
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with("annotations:") {
            skipping = true;
        } else if skipping && (indent <= 8 || line.trim().is_empty()) {
            skipping = false;
        }
        if !skipping {
            bare.push_str(line);
            bare.push('\n');
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), bare).unwrap();
    let test = r#"
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'leasewire_dhcp_pool_utilisation_ratio{subnet="10.0.0.0/24",instance="a"}'
        values: '0.5 0.5 0.95x10'
      - series: 'leasewire_dhcp_pool_utilisation_ratio{subnet="10.0.1.0/24",instance="a"}'
        values: '0.2x12'
      - series: 'leasewire_reloads_total{result="error",instance="a"}'
        values: '0 0 1 1 1'
      - series: 'leasewire_reloads_total{result="ok",instance="a"}'
        values: '0 1 2 3 4'
      - series: 'leasewire_dhcp_active_backlog_max{instance="a"}'
        values: '0+500x20'
      - series: 'leasewire_dhcp_active_backlog_max{instance="b"}'
        values: '5000x20'
    alert_rule_test:
      - eval_time: 3m
        alertname: LeasewirePoolAlmostFull
      - eval_time: 8m
        alertname: LeasewirePoolAlmostFull
        exp_alerts:
          - exp_labels: {severity: warning, subnet: "10.0.0.0/24", instance: a}
      - eval_time: 1m
        alertname: LeasewireReloadFailed
      - eval_time: 4m
        alertname: LeasewireReloadFailed
        exp_alerts:
          - exp_labels: {severity: warning, instance: a, result: error}
      - eval_time: 10m
        alertname: LeasewireActiveBacklogGrowing
        exp_alerts:
          - exp_labels: {severity: warning, instance: a}
"#;
    let path = dir.path().join("test.yml");
    std::fs::write(&path, test).unwrap();
    promtool(&["test", "rules", path.to_str().unwrap()]);
}
