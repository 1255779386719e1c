//! The config loader: any text is a Config or errors naming key and line;
//! what it accepts passes `validate` again (check-config and serve agree).
#![no_main]
use edgeslab::config::{load_str, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match load_str(text, "fuzz.toml") {
        Ok(config) => {
            assert!(validate(&config).is_empty());
            let _ = config.effective_origin_groups();
            let _ = edgeslab::gateway::behavior::Behaviors::new(&config.behaviors, config.cache.default_ttl.get());
        }
        Err(errors) => assert!(!errors.errors.is_empty()),
    }
});
