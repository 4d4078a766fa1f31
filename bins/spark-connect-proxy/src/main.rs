//! `spark-connect-proxy`: the stock proxy, with the built-in provider types and load policies.
//! Everything else (flags, logging, signals, exit codes) is [`sc_proxy::main`].

fn main() -> std::process::ExitCode {
    sc_proxy::main(sc_proxy::builtins())
}
