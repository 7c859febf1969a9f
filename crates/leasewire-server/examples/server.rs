//! Embed the server: start it from a configuration, look at what it bound, reload a changed configuration
//! and stop it.
//!
//! ```sh
//! cargo run -p leasewire-server --example server
//! ```

use leasewire_server::config::Config;
use leasewire_server::server::Server;

fn config(data: &std::path::Path, router: &str) -> String {
    format!(
        r#"
[server]
server-id = "127.0.0.1"
listen = ["127.0.0.1:0"]
data-dir = "{}"
[bulk-leasequery]
listen = ["127.0.0.1:0"]
allow = ["127.0.0.0/8"]
[[subnet]]
subnet = "127.0.0.0/8"
pools = [{{ start = "127.1.0.10", end = "127.1.0.200" }}]
options = {{ routers = ["{router}"] }}
"#,
        data.display()
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    // Binds every socket and opens (and locks) the store, or says which address, file or key is wrong.
    let running = Server::new(Config::parse(&config(&data, "127.0.0.1"))?).start().await?;
    let addrs = running.addrs();
    println!("DHCP on {:?}, Bulk/Active Leasequery on {:?}", addrs.dhcp, addrs.tcp);
    // A reload applies what changed; listeners stay as they are.
    let report = running.reload(Config::parse(&config(&data, "127.0.0.254"))?).await?;
    println!("reloaded: changed {:?}, needs a restart {:?}", report.changed, report.needs_restart);
    // Active streams end with QueryTerminated, commits in flight are finished, the store closes.
    running.stop().await;
    Ok(())
}
