//! A stand-in Spark Connect server for this crate's tests: the in-process fake backend of
//! `sc-testkit`, served from its own process so the provider can launch, probe and stop it.
//!
//! ```text
//! fake-spark-connect --port 15200 [--host 127.0.0.1] [--name engine-1] [--exit-after-ms 500]
//! ```
//!
//! It prints one line when it listens and serves until it is killed (or, with
//! `--exit-after-ms`, exits with status 7 after that long: an engine that crashes).

use std::net::{IpAddr, SocketAddr};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut port: Option<u16> = None;
    let mut host: IpAddr = [127, 0, 0, 1].into();
    let mut name = String::from("fake");
    let mut exit_after: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => port = Some(value()?.parse()?),
            "--host" => host = value()?.parse()?,
            "--name" => name = value()?,
            "--exit-after-ms" => exit_after = Some(value()?.parse()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let port = port.ok_or("--port is required")?;
    let addr = SocketAddr::new(host, port);
    let _state = sc_testkit::spawn_backend_at(&name, addr).await;
    println!("fake Spark Connect server {name} listening on {addr}");
    match exit_after {
        Some(ms) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            println!("fake Spark Connect server {name} crashing");
            std::process::exit(7);
        }
        None => std::future::pending::<()>().await,
    }
    Ok(())
}
