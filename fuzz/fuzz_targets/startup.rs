//! The start-up path after the loader: every configuration the loader
//! accepts (what check-config passes) is planned as `serve` plans it, at
//! the shard count it names or any count for `cores = "all"`; planning may
//! fail with an error, never panic.
#![no_main]
use edgeslab::config::{Cores, load_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let Ok(config) = load_str(text, "fuzz.toml") else { return };
    let shards = match &config.cores {
        Cores::List(list) => list.len() as u32,
        Cores::All => 1 + u32::from(count % 128),
    };
    let _ = edgeslab::runtime::plan::check(&config, shards);
});
