//! Fuzzes the configuration loader: `ProxyConfig::from_yaml` on any UTF-8 text returns a
//! configuration or an error, and never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = sc_proxy::ProxyConfig::from_yaml(text) {
        // A configuration that loads is valid, and what validation derives from it is too.
        assert!(config.validate().is_ok());
        assert!(config.provider().is_ok());
        assert!(config.policy().is_ok());
    }
});
