//! `custom-spark-connect-proxy`: the stock Spark Connect proxy with one more provider type, ENV
//! (servers listed in an environment variable; see the `env_provider` library beside this file).
//!
//! Everything else is the stock proxy's: authentication, the control plane, TLS, the session
//! store, reloads, worker threads, metrics, flags and exit codes. Run it as the stock one:
//!
//! ```text
//! SPARK_BACKENDS=localhost:15002,localhost:15003 \
//!     cargo run -p example-custom-provider -- --config-file proxy.yaml
//! ```
//!
//! with `backend_provider: {type: ENV, spec: {variable: SPARK_BACKENDS}}` in `proxy.yaml`.

fn main() -> std::process::ExitCode {
    let mut registry = sc_proxy::builtins();
    env_provider::register(&mut registry);
    sc_proxy::main(registry)
}
