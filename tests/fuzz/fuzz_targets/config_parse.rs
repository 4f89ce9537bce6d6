//! `Config::parse` of arbitrary UTF-8: a `Config` or a `ConfigError`, never a panic; the error
//! formats (it names file, line and key).
#![no_main]

use dhcp_user::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(err) = Config::parse(text, "fuzz.toml") {
        let _ = err.to_string();
    }
});
