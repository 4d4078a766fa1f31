//! An OTLP/gRPC trace receiver that runs until killed, printing how many spans it received:
//! the collector of a benchmark run with traces on (`docs/benchmarks.md`).
//!
//! `cargo run --release -p sc-testkit --example otlp_receiver -- 127.0.0.1:15730`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sc_testkit::otlp::OtlpReceiver;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4317".into());
    let receiver = OtlpReceiver::start(addr.parse().expect("an address such as 127.0.0.1:4317"));
    eprintln!("otlp_receiver: listening on {}", receiver.endpoint());
    let mut last = u64::MAX;
    loop {
        std::thread::sleep(Duration::from_secs(5));
        let received = receiver.received();
        if received != last {
            eprintln!("otlp_receiver: {received} spans received");
            last = received;
        }
    }
}
