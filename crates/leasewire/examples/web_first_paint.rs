//! How fast the browser view of a large replica paints: starts `leasewire watch --db FILE --http` on a
//! replica (e.g. one filled by `leasewire bench history`, a million bindings), opens `/` in headless
//! Chromium over WebDriver, and reports the first contentful paint and when the first page of bindings is in
//! the table (from navigation start), over several loads.
//!
//! ```sh
//! cargo run --release -p leasewire --example web_first_paint -- target/release/leasewire /tmp/h.sqlite3
//! ```

use fantoccini::{ClientBuilder, Locator};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, leasewire, db] = &args[..] else {
        eprintln!("usage: web_first_paint LEASEWIRE_BINARY REPLICA_FILE");
        std::process::exit(2);
    };
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (http, driver_port) = (free(), free());
    // A server nobody answers on: the page serves the replica as loaded from the file.
    let mut watch = Command::new(leasewire)
        .args(["watch", "--server", "127.0.0.1:9", "--retry-interval", "3600s", "--db", db])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let loading = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(loading.elapsed() < Duration::from_secs(300), "the watcher never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("watcher serving after {:.1} s (loading the replica)", loading.elapsed().as_secs_f64());
    let mut driver = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian package chromium-driver)");
    while std::net::TcpStream::connect(("127.0.0.1", driver_port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,820"]}),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .unwrap();
    for round in 0..5 {
        c.goto(&format!("http://127.0.0.1:{http}/?round={round}")).await.unwrap();
        // Wait for the table to hold its first page, then read the page's own clock.
        while c.find_all(Locator::Css("#bindings tr")).await.unwrap().len() < 50 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let timing = c
            .execute(
                "const p = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint');
                 const r = performance.getEntriesByType('resource').find(e => e.name.includes('/api/bindings'));
                 const m = performance.getEntriesByName('bindings-shown')[0];
                 return [p ? p.startTime : null, r ? r.responseEnd : null, m ? m.startTime : null,
                         document.getElementById('range').textContent];",
                vec![],
            )
            .await
            .unwrap();
        println!(
            "load {round}: [first contentful paint, /api/bindings answered, bindings in the table] (ms from \
             navigation), range: {timing}"
        );
    }
    c.close().await.unwrap();
    let _ = driver.kill();
    let _ = watch.kill();
    let _ = (driver.wait(), watch.wait());
}
