//! Fuzzes the configuration loader: `ProxyConfig::from_yaml` and `validate` (with the stock
//! registry) on any UTF-8 text return a configuration or an error, and never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = sc_proxy::ProxyConfig::from_yaml(text) {
        // Validation builds the provider, the policy and the authenticator, or names the key.
        if let Err(e) = config.validate(&sc_proxy::builtins()) {
            assert!(!e.to_string().is_empty());
        }
    }
});
