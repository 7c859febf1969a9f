//! The browser view of `leasewire watch --http`, in a real headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`): the page lists the replica's bindings, a new lease appears without a
//! reload within a second, a search by MAC finds it, and the address's timeline shows its release.
//!
//! Set `LEASEWIRE_SCREENSHOT=FILE` to save a screenshot of the page at the end (docs/web.png is one).

mod support;

use fantoccini::{Client, ClientBuilder, Locator};
use leasewire_proto::MessageType;
use leasewire_proto::options::code;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::relay::Relay;
use support::{Proc, Server, ServerConfig, free_tcp_port, free_udp_port, http_get, leasewire};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium and its WebDriver, or a failure that says what to install.
fn browser_programs() {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is missing: install the Debian package `{package}` (apt-get install chromium chromium-driver)"
        );
    }
}

fn start_chromedriver(dir: &std::path::Path) -> (Proc, u16) {
    let port = free_tcp_port();
    let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
    let p = Proc::spawn(
        "chromedriver",
        Command::new(CHROMEDRIVER).arg(format!("--port={port}")).stdin(Stdio::null()).stdout(log).stderr(Stdio::null()),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (p, port)
}

async fn browser(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,820", "--hide-scrollbars"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// The text of the first element matching `css`, or "" if there is none.
async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Wait (polling the page) until the text of `css` satisfies `ok`; returns it.
async fn wait_text(c: &Client, css: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = text(c, css).await;
        if ok(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "{css} never satisfied the condition; it shows: {t:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_lists_updates_live_searches_and_shows_a_timeline() {
    browser_programs();
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let config = ServerConfig::new(udp).active_insecure(tcp);
    let config = config.subnet("127.41.0.0/24", "127.41.0.1", "127.41.0.30", "lease-time = 3600");
    let _server = Server::start(dir.path(), &config.text(), None);
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::new(127, 41, 0, 254));
    let mut leased = Vec::new();
    for m in 1..=6u8 {
        let mac = [2, 0, 0, 0, 41, m];
        leased.push((relay.dora(mac, u32::from(m), Ipv4Addr::LOCALHOST).expect("a lease"), mac));
    }
    let http = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let _watch = Proc::spawn(
        "leasewire watch",
        Command::new(leasewire())
            .args(["watch", "--retry-interval", "200ms", "--server", &format!("127.0.0.1:{tcp}")])
            .arg("--db")
            .arg(dir.path().join("replica.sqlite3"))
            .args(["--http", &http.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // The watcher is up and seeded before the page loads.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http_get(http, &format!("/bindings?ip={}", leased[5].0)).contains("ACTIVE") {
        assert!(Instant::now() < deadline, "the watcher never had the leases");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (_driver, port) = start_chromedriver(dir.path());
    let c = browser(port).await;
    c.goto(&format!("http://{http}/")).await.unwrap();
    // The page lists the bindings (every configured address, the six leases among them).
    let rows = wait_text(&c, "#bindings", 10, |t| leased.iter().all(|(_, mac)| t.contains(&hex(mac)))).await;
    assert!(rows.contains("ACTIVE") && rows.contains("AVAILABLE"), "{rows}");
    wait_text(&c, "#range", 5, |t| t == "1–30 of 30").await;
    // Live updates are connected before the new lease is made.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.find(Locator::Css("#live.on")).await.is_err() {
        assert!(Instant::now() < deadline, "the page never connected to /events");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A new lease appears without a reload, within a second of its ACK.
    let mac = [2, 0, 0, 0, 41, 0x77];
    let ip = relay.dora(mac, 77, Ipv4Addr::LOCALHOST).expect("a lease");
    let acked = Instant::now();
    let row = format!("#bindings tr[data-ip=\"{ip}\"]");
    wait_text(&c, &row, 5, |t| t.contains(&hex(&mac)) && t.contains("ACTIVE")).await;
    let shown_after = acked.elapsed();
    assert!(shown_after < Duration::from_secs(1), "the new lease took {shown_after:?} to appear");

    // Search by MAC finds it, and only it.
    let q = c.find(Locator::Css("#q")).await.unwrap();
    q.send_keys(&hex(&mac)).await.unwrap();
    wait_text(&c, "#range", 5, |t| t == "1–1 of 1").await;
    let found = text(&c, "#bindings").await;
    assert!(found.contains(&ip.to_string()) && found.contains(&hex(&mac)), "{found}");

    // Its timeline: held by the new client; after the release, the release is there too.
    c.find(Locator::Css(&row)).await.unwrap().click().await.unwrap();
    wait_text(&c, "#timeline", 5, |t| t.contains(&hex(&mac)) && t.contains("ACTIVE")).await;
    let mut rel = relay.request(MessageType::Release, mac, 78);
    rel.ciaddr = ip;
    rel.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::LOCALHOST);
    relay.send(&rel);
    let timeline = wait_text(&c, "#timeline", 5, |t| t.contains("RELEASED")).await;
    let lower = timeline.to_lowercase(); // (the heading is styled upper case)
    assert!(lower.contains(&format!("timeline of {ip}")) && timeline.contains(&hex(&mac)), "{timeline}");
    wait_text(&c, &row, 5, |t| t.contains("RELEASED")).await;

    // The JSON the page reads: history of the MAC in the one schema, counts per relay, the connection.
    let lines = http_get(http, &format!("/history?mac={}&from=0", hex(&mac)));
    let intervals: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(intervals.len(), 1, "{lines}");
    leasewire_requestor::json::validate(&intervals[0]).unwrap();
    assert_eq!((intervals[0]["ip"].as_str(), intervals[0]["to"].is_string()), (Some(&*ip.to_string()), true));
    assert!(http_get(http, "/history?ip=nonsense").contains("not an IPv4 address"));
    let counts = http_get(http, "/api/counts");
    assert!(
        counts.contains(&format!("\"relay\":\"remote-id {}\",\"by_state\":{{\"RELEASED\":1}}", hex(&mac))),
        "{counts}"
    );
    let links = http_get(http, "/api/connections");
    assert!(links.contains("\"tls\":false,\"streaming\":true,\"seeded\":true"), "{links}");

    if let Ok(path) = std::env::var("LEASEWIRE_SCREENSHOT") {
        q.clear().await.unwrap();
        wait_text(&c, "#range", 5, |t| t.ends_with("of 30")).await;
        c.find(Locator::Css(&row)).await.unwrap().click().await.unwrap();
        wait_text(&c, "#timeline", 5, |t| t.contains("RELEASED")).await;
        std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
    }
    c.close().await.unwrap();
}

fn hex(b: &[u8]) -> String {
    leasewire_proto::hex::format(b)
}
