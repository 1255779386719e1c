//! The layout rules of README's "Layout" section, checked on the source:
//! glommio is named only in `runtime/`, `net/` and the store's device layer;
//! the pure layers (`http`, `gateway`, `cache::policy`, `cache::key`,
//! `cache::vary`) do no I/O, never await and never read the clock; every
//! module opens with a `//!` contract. A change that breaks a rule fails here, not in review.

use std::path::{Path, PathBuf};

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Path relative to `src/`, with forward slashes.
fn rel(path: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    path.strip_prefix(&src)
        .expect("under src")
        .to_string_lossy()
        .replace('\\', "/")
}

/// The code of a line: comments dropped (a `//` outside a string literal).
fn code(line: &str) -> &str {
    let mut in_string = false;
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// (file, line number, line) of every code line of `files` containing `needle`.
fn uses(files: &[(String, String)], needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for (name, text) in files {
        for (n, line) in text.lines().enumerate() {
            if code(line).contains(needle) {
                hits.push(format!("{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    hits
}

fn all_sources() -> Vec<(String, String)> {
    let mut paths = Vec::new();
    source_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut paths,
    );
    assert!(paths.len() > 20, "found only {} source files", paths.len());
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read source");
            (rel(&p), text)
        })
        .collect()
}

#[test]
fn glommio_is_named_only_in_runtime_net_and_the_device_layer() {
    let allowed = |name: &str| {
        name.starts_with("runtime/") || name.starts_with("net/") || name == "cache/store/device.rs"
    };
    let elsewhere: Vec<_> = all_sources()
        .into_iter()
        .filter(|(name, _)| !allowed(name))
        .collect();
    let hits = uses(&elsewhere, "glommio");
    assert!(
        hits.is_empty(),
        "glommio outside its boundary:\n{}",
        hits.join("\n")
    );
}

#[test]
fn pure_layers_do_no_io_never_await_and_take_the_clock_as_an_argument() {
    let pure = |name: &str| {
        name.starts_with("http/")
            || name.starts_with("gateway/")
            || name.starts_with("cache/policy/")
            || name == "cache/key.rs"
            || name.starts_with("cache/vary")
            || name == "cache/parts.rs"
    };
    let files: Vec<_> = all_sources()
        .into_iter()
        .filter(|(name, _)| pure(name))
        .collect();
    assert!(files.len() >= 10, "pure layer files: {}", files.len());
    let mut hits = Vec::new();
    for needle in [
        "crate::net",
        "crate::runtime",
        "crate::proxy",
        "crate::upstream::Origin",
        "crate::cache::store",
        "std::fs",
        "std::net::Tcp",
        "async ",
        ".await",
        "SystemTime::now",
        "Instant::now",
        "tracing::",
    ] {
        hits.extend(uses(&files, needle));
    }
    assert!(
        hits.is_empty(),
        "I/O or runtime in a pure layer:\n{}",
        hits.join("\n")
    );
}

#[test]
fn every_module_opens_with_its_contract() {
    let missing: Vec<_> = all_sources()
        .into_iter()
        .filter(|(_, text)| !text.starts_with("//!"))
        .map(|(name, _)| name)
        .collect();
    assert!(missing.is_empty(), "no //! module doc: {missing:?}");
}

#[test]
fn the_comment_filter_keeps_code_and_drops_comments() {
    assert_eq!(code("let a = 1; // glommio"), "let a = 1; ");
    assert_eq!(code("//! glommio"), "");
    assert_eq!(code("let s = \"a//b\";"), "let s = \"a//b\";");
    assert_eq!(code("use glommio::io;"), "use glommio::io;");
}
