//! Loading and validating a configuration file. Every error names the key and
//! the line it is on, and validation reports all the errors it finds at once,
//! so an operator fixes a file in one pass. Never panics on any input.

use super::{Config, Cores, Role};
use std::fmt;
use std::path::Path;
use toml_edit::{ImDocument, Item};

/// The longest lifetime the cache policy represents (RFC 9111 §1.2.2).
const MAX_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(crate::cache::policy::MAX_DELTA_SECONDS);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. "origin.url"; empty for a syntax error.
    pub key: String,
    /// 1-based line of the key, when it appears in the file.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.key.is_empty()) {
            (Some(l), false) => write!(f, "line {l}: {}: {}", self.key, self.message),
            (Some(l), true) => write!(f, "line {l}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.key, self.message),
            (None, true) => write!(f, "{}", self.message),
        }
    }
}

/// All errors found in one file.
#[derive(Debug)]
pub struct ConfigErrors {
    pub source: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {e}", self.source)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, &source),
        Err(e) => Err(ConfigErrors {
            source,
            errors: vec![ConfigError {
                key: String::new(),
                line: None,
                message: format!("cannot read the file: {e}"),
            }],
        }),
    }
}

/// Problems found beyond the file's text (against the host), each placed
/// at its key's line in the file at `path`.
pub fn errors_at_keys(path: &Path, problems: Vec<(&str, String)>) -> ConfigErrors {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let doc = ImDocument::parse(text.as_str()).ok();
    let errors = problems
        .into_iter()
        .map(|(key, message)| ConfigError {
            key: key.to_string(),
            line: doc.as_ref().and_then(|d| line_of_key(d, &text, key)),
            message,
        })
        .collect();
    ConfigErrors {
        source: path.display().to_string(),
        errors,
    }
}

pub fn load_str(text: &str, source: &str) -> Result<Config, ConfigErrors> {
    let fail = |errors| ConfigErrors {
        source: source.to_string(),
        errors,
    };
    let doc = match ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start));
            return Err(fail(vec![ConfigError {
                key: String::new(),
                line,
                message: format!("TOML syntax error: {}", e.message()),
            }]));
        }
    };
    // The role picks the defaults, so read it before the rest.
    let role = match doc.get("role").and_then(Item::as_str) {
        Some("regional") => Role::Regional,
        _ => Role::Edge,
    };
    // A value of the wrong type stops serde at the first; each one found is
    // reported and its key taken out, and the rest read again, so that one
    // run names every error (up to one per key).
    let mut unknown = Vec::new();
    let mut type_errors = Vec::new();
    let mut current = text.to_string();
    let mut config = loop {
        unknown.clear();
        let de = toml::Deserializer::new(&current);
        let parsed: Result<Config, _> = serde_ignored::deserialize(de, |path| {
            unknown.push(path.to_string());
        });
        let e = match parsed {
            Ok(c) => break c,
            Err(e) => e,
        };
        let now = ImDocument::parse(current.as_str()).ok();
        let key = e
            .span()
            .and_then(|s| now.as_ref().and_then(|d| key_at(d, s.start)));
        let line = match &key {
            Some(k) => line_of_key(&doc, text, k),
            None if type_errors.is_empty() => e.span().map(|s| line_of(text, s.start)),
            None => None,
        };
        type_errors.push(ConfigError {
            line,
            key: key.clone().unwrap_or_default(),
            message: e.message().trim().to_string(),
        });
        let removed = key.and_then(|k| without_key(&current, &k));
        match removed {
            Some(rest) if type_errors.len() < MAX_TYPE_ERRORS => current = rest,
            _ => return Err(fail(type_errors)),
        }
    };
    if role == Role::Regional {
        apply_role_defaults(&mut config, &doc);
    }
    let mut errors: Vec<ConfigError> = type_errors;
    errors.extend(unknown.into_iter().map(|key| ConfigError {
        line: line_of_key(&doc, text, &key),
        message: "unknown key (misspelt, or in the wrong [section]?)".into(),
        key,
    }));
    for (key, message) in validate(&config) {
        errors.push(ConfigError {
            line: line_of_key(&doc, text, &key),
            key,
            message,
        });
    }
    // In file order, so that an operator fixes it top to bottom.
    errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(fail(errors))
    }
}

/// serde filled absent fields from the edge defaults; for a regional node the
/// fields the file leaves out take the regional defaults instead.
fn apply_role_defaults(config: &mut Config, doc: &ImDocument<&str>) {
    let regional = Config::for_role(Role::Regional);
    let absent = |path: &str| find_item(doc, path).is_none();
    if absent("origin.max_idle_per_shard") {
        config.origin.max_idle_per_shard = regional.origin.max_idle_per_shard;
    }
    if absent("cache.avg_object_size") {
        config.cache.avg_object_size = regional.cache.avg_object_size;
    }
    if absent("listen.idle_timeout") {
        config.listen.idle_timeout = regional.listen.idle_timeout;
    }
}

/// Semantic checks that the types alone do not express. Returns (key, message).
pub fn validate(c: &Config) -> Vec<(String, String)> {
    let mut errs: Vec<(String, String)> = Vec::new();
    validate_fixed(c, &mut errs);
    validate_tiers(c, &mut errs);
    validate_behaviors(c, &mut errs);
    validate_tls(c, &mut errs);
    if c.listen.proxy_protocol && c.listen.proxy_trusted.is_empty() {
        errs.push((
            "listen.proxy_trusted".into(),
            "lists no network, so listen.proxy_protocol would refuse every connection: name the load balancers' (e.g. [\"10.0.0.0/8\"])".into(),
        ));
    }
    errs
}

/// `[tls]` and `origin.ca_file`: the files are read and checked here, so
/// that `check-config` (and a reload) refuses what a start would.
fn validate_tls(c: &Config, errs: &mut Vec<(String, String)>) {
    let t = &c.tls;
    match (t.addr, t.certs.is_empty()) {
        (Some(_), true) => errs.push((
            "tls.certs".into(),
            "HTTPS (tls.addr) needs at least one certificate: certs = [{ chain = \"…pem\", key = \"…pem\" }]".into(),
        )),
        (None, false) => errs.push((
            "tls.addr".into(),
            "certificates are configured but no HTTPS address (e.g. \"0.0.0.0:443\")".into(),
        )),
        _ => {}
    }
    if t.addr.is_some_and(|a| a == c.listen.addr && a.port() != 0) {
        errs.push((
            "tls.addr".into(),
            format!(
                "{} is listen.addr too: give HTTPS its own port",
                c.listen.addr
            ),
        ));
    }
    if t.addr
        .is_some_and(|a| c.admin.enabled && a == c.admin.addr && a.port() != 0)
    {
        errs.push((
            "tls.addr".into(),
            format!(
                "{} is admin.addr too: give HTTPS its own port",
                c.admin.addr
            ),
        ));
    }
    for (i, pair) in t.certs.iter().enumerate() {
        if let Err(e) = crate::net::tls::load_pair(pair) {
            errs.push((format!("tls.certs[{i}]"), e.to_string()));
        }
    }
    if t.handshake_timeout.get().is_zero() {
        errs.push((
            "tls.handshake_timeout".into(),
            "must be greater than zero".into(),
        ));
    }
    if let Some(ca) = &c.origin.ca_file
        && let Err(e) = crate::net::tls::client_config(Some(ca))
    {
        errs.push(("origin.ca_file".into(), e.to_string()));
    }
}

/// `[[behavior]]` tables, and the origin groups they name.
fn validate_behaviors(c: &Config, errs: &mut Vec<(String, String)>) {
    use crate::gateway::behavior::Behaviors;
    if let Err(found) = Behaviors::new(&c.behaviors, c.cache.default_ttl.get()) {
        errs.extend(found);
    }
    let groups = c.effective_origin_groups();
    for (i, b) in c.behaviors.iter().enumerate() {
        if !groups.iter().any(|g| g.name == b.origin_group) {
            errs.push((
                format!("behavior[{i}].origin_group"),
                format!("no origin group is named {:?}", b.origin_group),
            ));
        }
    }
}

/// Origins, groups, parents, peers and the node's name.
fn validate_tiers(c: &Config, errs: &mut Vec<(String, String)>) {
    use crate::upstream::OriginAddr;
    let has_default_group = c
        .origin_groups
        .iter()
        .any(|g| g.name == super::DEFAULT_GROUP);
    if c.origin.url.is_empty() {
        if !has_default_group {
            errs.push((
                "origin.url".into(),
                "is required (e.g. \"http://10.0.0.5:80\"), unless an [[origin_group]] named \"default\" is given".into(),
            ));
        }
    } else if let Err(e) = OriginAddr::parse(&c.origin.url) {
        errs.push(("origin.url".into(), e));
    }
    if let Some(url) = &c.origin.failover_url
        && let Err(e) = OriginAddr::parse(url)
    {
        errs.push(("origin.failover_url".into(), e));
    }
    if c.origin.dns_ttl.get().is_zero() {
        errs.push(("origin.dns_ttl".into(), "must be greater than zero".into()));
    }
    let mut names = std::collections::HashSet::new();
    for (i, g) in c.origin_groups.iter().enumerate() {
        let at = |k: &str| format!("origin_group[{i}].{k}");
        if g.name.is_empty() {
            errs.push((at("name"), "is required".into()));
        } else if !names.insert(g.name.as_str()) {
            errs.push((at("name"), format!("{:?} names two groups", g.name)));
        }
        if g.origins.is_empty() {
            errs.push((at("origins"), "must list at least one origin URL".into()));
        }
        for (j, url) in g.origins.iter().enumerate() {
            if let Err(e) = OriginAddr::parse(url) {
                errs.push((format!("origin_group[{i}].origins[{j}]"), e));
            }
        }
        if let Some(s) = g
            .failover_statuses
            .iter()
            .find(|s| !(100..=599).contains(*s))
        {
            errs.push((
                at("failover_statuses"),
                format!("{s} is not an HTTP status"),
            ));
        }
        if let Some(h) = &g.health_check {
            if !h.path.starts_with('/') {
                errs.push((at("health_check.path"), "must start with \"/\"".into()));
            }
            if h.interval.get().is_zero() || h.timeout.get().is_zero() {
                errs.push((
                    at("health_check.interval"),
                    "interval and timeout must be greater than zero".into(),
                ));
            }
            if h.healthy_threshold == 0 || h.unhealthy_threshold == 0 {
                errs.push((
                    at("health_check.healthy_threshold"),
                    "thresholds must be at least 1".into(),
                ));
            }
        }
    }
    for (i, p) in c.parents.addrs.iter().enumerate() {
        if let Err(e) = OriginAddr::parse_host_port(p) {
            errs.push((format!("parents.addrs[{i}]"), e));
        }
    }
    for (i, p) in c.invalidation.peers.iter().enumerate() {
        if let Err(e) = OriginAddr::parse_host_port(p) {
            errs.push((format!("invalidation.peers[{i}]"), e));
        }
    }
    if c.admin
        .token
        .as_deref()
        .is_some_and(|t| t.trim().is_empty() || t.contains(char::is_whitespace))
    {
        errs.push((
            "admin.token".into(),
            "must be non-empty and contain no whitespace".into(),
        ));
    }
    let name = c.node_name();
    if name.is_empty() || !name.bytes().all(crate::http::headers::is_tchar) {
        errs.push((
            "name".into(),
            "must be a non-empty token (letters, digits and !#$%&'*+-.^_`|~)".into(),
        ));
    }
    if c.invalidation.peer_timeout.get().is_zero() {
        errs.push((
            "invalidation.peer_timeout".into(),
            "must be greater than zero".into(),
        ));
    }
}

fn validate_fixed(c: &Config, out: &mut Vec<(String, String)>) {
    let mut errs: Vec<(&'static str, String)> = Vec::new();
    if let Cores::List(list) = &c.cores {
        if list.is_empty() {
            errs.push((
                "cores",
                "lists no core: give at least one, or \"all\"".into(),
            ));
        }
        let mut sorted = list.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != list.len() {
            errs.push(("cores", "lists a core twice".into()));
        }
    }
    if ![404, 421].contains(&c.listen.unknown_host_status) {
        errs.push(("listen.unknown_host_status", "must be 404 or 421".into()));
    }
    if c.listen.max_header_bytes < 1024 {
        errs.push(("listen.max_header_bytes", "must be at least 1024".into()));
    }
    if c.listen.max_uri_bytes < 64 || c.listen.max_uri_bytes > c.listen.max_header_bytes {
        errs.push((
            "listen.max_uri_bytes",
            "must be at least 64 and at most listen.max_header_bytes".into(),
        ));
    }
    if c.listen.max_connections_per_shard == 0 {
        errs.push((
            "listen.max_connections_per_shard",
            "must be at least 1 (0 would refuse every connection)".into(),
        ));
    }
    if c.listen.max_headers == 0 {
        errs.push(("listen.max_headers", "must be at least 1".into()));
    }
    if c.origin.max_header_bytes < 1024 {
        errs.push(("origin.max_header_bytes", "must be at least 1024".into()));
    }
    if c.origin.max_headers == 0 {
        errs.push(("origin.max_headers", "must be at least 1".into()));
    }
    for (key, d) in [
        ("listen.header_timeout", c.listen.header_timeout),
        ("listen.idle_timeout", c.listen.idle_timeout),
        ("listen.io_timeout", c.listen.io_timeout),
        ("origin.connect_timeout", c.origin.connect_timeout),
        ("origin.first_byte_timeout", c.origin.first_byte_timeout),
        ("origin.idle_timeout", c.origin.idle_timeout),
    ] {
        if d.get().is_zero() {
            errs.push((key, "must be greater than zero".into()));
        }
    }
    let seg = c.cache.segment_size.get();
    if !(1 << 20..=1 << 30).contains(&seg) || !seg.is_power_of_two() {
        errs.push((
            "cache.segment_size",
            "must be a power of two between 1MiB and 1GiB".into(),
        ));
    }
    if c.cache.path.as_os_str().is_empty() {
        errs.push(("cache.path", "is required".into()));
    }
    // RFC 9111 §1.2.2: lifetimes beyond 2^31 seconds are not representable
    // in delta-seconds; a larger setting is a typo, not a wish.
    for (key, d) in [
        ("cache.default_ttl", c.cache.default_ttl),
        ("cache.max_heuristic_ttl", c.cache.max_heuristic_ttl),
        ("cache.error_ttl", c.cache.error_ttl),
        ("cache.stale_if_error", c.cache.stale_if_error),
    ] {
        if d.get() > MAX_LIFETIME {
            errs.push((key, "must be at most 2^31 seconds (about 68 years)".into()));
        }
    }
    if let Some(total) = host_memory()
        && c.cache.ram_size.get() > total
    {
        errs.push((
            "cache.ram_size",
            format!(
                "{} is more than this host's memory ({:.1}GiB); the RAM tier must fit beside everything else",
                c.cache.ram_size,
                total as f64 / f64::from(1u32 << 30)
            ),
        ));
    }
    if c.cache.ram_max_object.get() > c.cache.ram_size.get() && c.cache.ram_size.get() > 0 {
        errs.push((
            "cache.ram_max_object",
            "must be at most cache.ram_size".into(),
        ));
    }
    if c.cache.avg_object_size.get() < 64 {
        errs.push(("cache.avg_object_size", "must be at least 64 bytes".into()));
    }
    if c.admin.enabled && c.admin.addr == c.listen.addr && c.listen.addr.port() != 0 {
        errs.push(("admin.addr", "must differ from listen.addr".into()));
    }
    if let Err(e) = check_log_filter(&c.log.level) {
        errs.push(("log.level", e));
    }
    for (i, host) in c.listen.hosts.iter().enumerate() {
        // "name", "name:port" or "[v6]:port", as a Host field carries it.
        let name = match host.rsplit_once(':') {
            Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let checked = match name.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            Some(v6) => v6
                .parse::<std::net::Ipv6Addr>()
                .map(|_| ())
                .map_err(|_| format!("{host:?} is not an IPv6 address")),
            None => crate::upstream::check_host_name(name),
        };
        if let Err(e) = checked {
            out.push((format!("listen.hosts[{i}]"), e));
        }
    }
    out.extend(errs.into_iter().map(|(k, m)| (k.to_string(), m)));
}

/// This host's memory in bytes (`MemTotal`), read once.
fn host_memory() -> Option<u64> {
    static TOTAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    })
}

/// Log levels a filter directive may name.
const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// A log filter: comma-separated directives, each a level (`info`) or
/// `target=level` (`edgeslab::upstream=debug`). A bare word that is not a
/// level would be read as a target and silence everything else, so a typo
/// such as `warning` is an error here, not a quiet log.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    let expected = || LOG_LEVELS.join(", ");
    if filter.trim().is_empty() {
        return Err(format!("is empty; give a level ({})", expected()));
    }
    for directive in filter.split(',').map(str::trim) {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level.trim(),
            Some(_) => return Err(format!("{directive:?} names no target before \"=\"")),
            None => directive,
        };
        if !LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "{level:?} is not a log level (expected one of {}, or target=level)",
                expected()
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|e| format!("invalid filter: {e}"))
}

/// Type errors reported from one file at most (each removes a key).
const MAX_TYPE_ERRORS: usize = 64;

/// `text` with the key at dotted `path` (`behavior[1].cache.min_ttl`)
/// removed; None when it cannot be found.
fn without_key(text: &str, path: &str) -> Option<String> {
    let mut doc: toml_edit::DocumentMut = text.parse().ok()?;
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last()?;
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    for part in parents {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*part, None),
        };
        let item = table.get_mut(name)?;
        table = match (index, item) {
            (Some(i), Item::ArrayOfTables(a)) => a.get_mut(i)?,
            (None, item) => item.as_table_like_mut()?,
            _ => return None,
        };
    }
    let name = last.split_once('[').map_or(*last, |(n, _)| n);
    table.remove(name)?;
    Some(doc.to_string())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn find_item<'a>(doc: &'a ImDocument<&str>, path: &str) -> Option<&'a Item> {
    let mut item = doc.as_item();
    for part in path.split('.') {
        item = item.as_table_like()?.get(part)?;
    }
    Some(item)
}

/// Line of the deepest part of `path` present in the file (so an error on a
/// key that was left out points at its table, if that is present).
fn line_of_key(doc: &ImDocument<&str>, text: &str, path: &str) -> Option<usize> {
    let mut table = doc.as_table() as &dyn toml_edit::TableLike;
    let mut line = None;
    for part in path.split('.') {
        // "behavior[2]": the third table of an array of tables (or the
        // third value of an array).
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let (key, item) = table.get_key_value(name)?;
        if let Some(span) = key.span().or_else(|| item.span()) {
            line = Some(line_of(text, span.start));
        }
        let item = match (index, item) {
            (Some(i), Item::ArrayOfTables(a)) => match a.get(i) {
                Some(t) => {
                    if let Some(span) = t.span() {
                        line = Some(line_of(text, span.start));
                    }
                    table = t;
                    continue;
                }
                None => break,
            },
            (Some(i), Item::Value(toml_edit::Value::Array(a))) => {
                if let Some(span) = a.get(i).and_then(|v| v.span()) {
                    line = Some(line_of(text, span.start));
                }
                break;
            }
            _ => item,
        };
        match item.as_table_like() {
            Some(t) => table = t,
            None => break,
        }
    }
    line
}

/// The dotted key whose value contains byte `offset`.
fn key_at(doc: &ImDocument<&str>, offset: usize) -> Option<String> {
    fn walk(table: &dyn toml_edit::TableLike, offset: usize, prefix: &str) -> Option<String> {
        for (name, item) in table.iter() {
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(t) = item.as_table_like()
                && let Some(found) = walk(t, offset, &path)
            {
                return Some(found);
            }
            if let Item::ArrayOfTables(tables) = item {
                for (i, t) in tables.iter().enumerate() {
                    if let Some(found) = walk(t, offset, &format!("{path}[{i}]")) {
                        return Some(found);
                    }
                }
            }
            let key_span = table.get_key_value(name).and_then(|(k, _)| k.span());
            let value_span = item.span();
            let start = key_span.as_ref().or(value_span.as_ref()).map(|s| s.start);
            let end = value_span.as_ref().or(key_span.as_ref()).map(|s| s.end);
            if let (Some(s), Some(e)) = (start, end)
                && (s..e.max(s + 1)).contains(&offset)
                && item.as_table_like().is_none()
            {
                return Some(path);
            }
        }
        None
    }
    walk(doc.as_table(), offset, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
cores = [0]
[listen]
addr = "127.0.0.1:8080"
[origin]
url = "http://127.0.0.1:8000"
[cache]
path = "/tmp/x.slab"
size = "64MiB"
"#;

    #[test]
    fn good_file_loads() {
        let c = load_str(GOOD, "t.toml").unwrap();
        assert_eq!(c.cores, Cores::List(vec![0]));
        assert_eq!(c.cache.size.get(), 64 << 20);
        assert_eq!(c.origin.max_idle_per_shard, 64);
    }

    #[test]
    fn every_unknown_key_and_bad_value_is_reported_with_its_line() {
        let text = "\
[listen]
addr = \"127.0.0.1:8080\"
adress = \"x\"
unknown_host_status = 500
[origin]
url = \"ftp://x\"
[cache]
segmnt_size = \"8MiB\"
";
        let errs = load_str(text, "t.toml").unwrap_err();
        let shown = errs.to_string();
        let lines: Vec<_> = errs
            .errors
            .iter()
            .map(|e| (e.key.as_str(), e.line))
            .collect();
        assert!(lines.contains(&("listen.adress", Some(3))), "{shown}");
        assert!(lines.contains(&("cache.segmnt_size", Some(8))), "{shown}");
        assert!(
            lines.contains(&("listen.unknown_host_status", Some(4))),
            "{shown}"
        );
        assert!(lines.contains(&("origin.url", Some(6))), "{shown}");
        assert!(shown.contains("t.toml: line 6: origin.url"), "{shown}");
    }

    #[test]
    fn type_errors_name_key_and_line() {
        let text = "[origin]\nurl = \"http://a:1\"\n\n[listen]\nmax_headers = \"many\"\n";
        let errs = load_str(text, "t.toml").unwrap_err();
        assert_eq!(errs.errors.len(), 1);
        assert_eq!(errs.errors[0].key, "listen.max_headers");
        assert_eq!(errs.errors[0].line, Some(5));
    }

    #[test]
    fn every_type_error_is_reported_in_one_run_with_the_rest() {
        let text = "\
cores = \"most\"
[origin]
url = \"http://a:1\"
[listen]
max_headers = \"many\"
header_timeout = true
idle_timeout = 1.5
max_connections_per_shard = 0
[cache]
size = -3
[[behavior]]
path = \"/a/*\"
[behavior.cache]
min_ttl = [1]
[log]
level = \"warning\"
";
        let errs = load_str(text, "t.toml").unwrap_err();
        let shown = errs.to_string();
        let found: Vec<_> = errs
            .errors
            .iter()
            .map(|e| (e.key.as_str(), e.line))
            .collect();
        for want in [
            ("cores", Some(1)),
            ("listen.max_headers", Some(5)),
            ("listen.header_timeout", Some(6)),
            ("listen.max_connections_per_shard", Some(8)),
            ("cache.size", Some(10)),
            ("behavior[0].cache.min_ttl", Some(14)),
            ("log.level", Some(16)),
        ] {
            assert!(found.contains(&want), "{want:?} in\n{shown}");
        }
        assert!(!shown.contains("untagged"), "{shown}");
        assert!(
            !shown.contains("listen.idle_timeout"),
            "1.5 s is a duration: {shown}"
        );
        assert!(shown.contains("a duration"), "{shown}");
    }

    #[test]
    fn host_names_and_memory_are_checked() {
        let text = "[origin]\nurl = \"http://my origin:80\"\n[listen]\nhosts = [\"ok.example:8080\", \"bad host\", \"[::1]\"]\n[cache]\nram_size = \"1000TiB\"\n";
        let errs = load_str(text, "t.toml").unwrap_err();
        let keys: Vec<_> = errs.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["origin.url", "listen.hosts[1]", "cache.ram_size"],
            "{errs}"
        );
    }

    #[test]
    fn log_filters_name_levels_or_targets() {
        for good in [
            "info",
            "WARN",
            "edgeslab=debug,info",
            "edgeslab::upstream=trace",
        ] {
            assert_eq!(check_log_filter(good), Ok(()), "{good}");
        }
        for bad in ["warning", "verbose", "", "edgeslab=loud", "=info", "info,"] {
            assert!(check_log_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_policy_keys_load_and_are_checked() {
        let text = "[origin]\nurl = \"http://a:1\"\n[cache]\nerror_ttl = \"30s\"\n\
                    stale_if_error = \"1h\"\nhonor_viewer_no_cache = false\n";
        let c = load_str(text, "t").unwrap();
        assert_eq!(c.cache.error_ttl.get().as_secs(), 30);
        assert_eq!(c.cache.stale_if_error.get().as_secs(), 3600);
        assert!(!c.cache.honor_viewer_no_cache);
        let defaults = Config::default();
        assert!(defaults.cache.error_ttl.get().is_zero());
        assert!(defaults.cache.stale_if_error.get().is_zero());
        assert!(defaults.cache.honor_viewer_no_cache);
        let text = "[origin]\nurl = \"http://a:1\"\n[cache]\nstale_if_error = \"100years\"\n";
        let errs = load_str(text, "t").unwrap_err();
        assert_eq!(errs.errors.len(), 1);
        assert_eq!(errs.errors[0].key, "cache.stale_if_error");
        assert_eq!(errs.errors[0].line, Some(4));
        let text = "[origin]\nurl = \"http://a:1\"\n[cache]\nhonor_viewer_no_cache = \"no\"\n";
        let errs = load_str(text, "t").unwrap_err();
        assert_eq!(errs.errors[0].key, "cache.honor_viewer_no_cache");
        assert_eq!(errs.errors[0].line, Some(4));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let errs = load_str("[origin]\nurl = \n", "t.toml").unwrap_err();
        assert_eq!(errs.errors[0].line, Some(2));
    }

    #[test]
    fn regional_role_changes_defaults_not_explicit_values() {
        let text = "role = \"regional\"\n[origin]\nurl = \"http://a:1\"\n";
        let c = load_str(text, "t").unwrap();
        assert_eq!(c.role, Role::Regional);
        assert_eq!(c.origin.max_idle_per_shard, 256);
        let text = "role = \"regional\"\n[origin]\nurl = \"http://a:1\"\nmax_idle_per_shard = 3\n";
        assert_eq!(load_str(text, "t").unwrap().origin.max_idle_per_shard, 3);
    }

    #[test]
    fn core_lists() {
        assert_eq!(
            "0,2-3".parse::<Cores>().unwrap(),
            Cores::List(vec![0, 2, 3])
        );
        assert_eq!("all".parse::<Cores>().unwrap(), Cores::All);
        assert!("3-1".parse::<Cores>().is_err());
        assert!("x".parse::<Cores>().is_err());
    }

    #[test]
    fn behaviours_groups_and_parents_are_checked_with_their_lines() {
        let text = "\
[origin]
url = \"http://127.0.0.1:8000\"
[parents]
addrs = [\"10.0.0.1:80\", \"bad host:x\"]
[[origin_group]]
name = \"media\"
origins = [\"http://a:80\", \"ftp://b\"]
[[behavior]]
path = \"/images/*\"
origin_group = \"media\"
[[behavior]]
path = \"*.jpg\"
origin_group = \"nowhere\"
methods = [\"GET\", \"FETCH\"]
[cache]
path = \"/tmp/x\"
";
        let err = load_str(text, "t.toml").unwrap_err();
        let lines: Vec<String> = err.errors.iter().map(|e| e.to_string()).collect();
        let has = |want: &str| lines.iter().any(|l| l.contains(want));
        assert!(has("line 4: parents.addrs[1]"), "{lines:#?}");
        assert!(has("line 7: origin_group[0].origins[1]"), "{lines:#?}");
        assert!(
            has("origin_group[1].origin_group") || has("behavior[1].origin_group"),
            "{lines:#?}"
        );
        assert!(has("behavior[1].methods"), "{lines:#?}");
        let line_of = |key: &str| {
            err.errors
                .iter()
                .find(|e| e.key == key)
                .and_then(|e| e.line)
        };
        assert_eq!(line_of("behavior[1].origin_group"), Some(13));
    }

    /// `cores = []` passed validation and divided by zero at start.
    #[test]
    fn tls_settings_that_cannot_serve_are_errors_at_their_keys() {
        let errors = |tls: &str| -> Vec<String> {
            let text = format!(
                "[origin]\nurl = \"https://origin.test\"\n[admin]\naddr = \"127.0.0.1:9090\"\n[tls]\n{tls}"
            );
            match load_str(&text, "t.toml") {
                Ok(_) => Vec::new(),
                Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
            }
        };
        let has = |lines: &[String], want: &str| lines.iter().any(|l| l.contains(want));
        let e = errors("addr = \"0.0.0.0:443\"\n");
        assert!(has(&e, "tls.certs: HTTPS (tls.addr) needs"), "{e:#?}");
        let e =
            errors("certs = [{ chain = \"/nonexistent/c.pem\", key = \"/nonexistent/k.pem\" }]\n");
        assert!(has(&e, "tls.addr: certificates are configured"), "{e:#?}");
        assert!(
            has(&e, "line 6: tls.certs[0]: /nonexistent/c.pem"),
            "{e:#?}"
        );
        let e = errors("addr = \"127.0.0.1:9090\"\nhandshake_timeout = \"0s\"\n");
        assert!(has(&e, "is admin.addr too"), "{e:#?}");
        assert!(
            has(&e, "tls.handshake_timeout: must be greater than zero"),
            "{e:#?}"
        );
        let e = errors("certs = [{ chain = \"a.pem\" }]\n");
        assert!(has(&e, "tls.certs"), "a pair without its key: {e:#?}");
    }

    #[test]
    fn an_empty_core_list_is_an_error_with_its_line() {
        let text = "cores = []\n[origin]\nurl = \"http://127.0.0.1:8000\"\n[listen]\nmax_connections_per_shard = 0\n";
        let err = load_str(text, "t.toml").unwrap_err();
        let first = &err.errors[0];
        assert_eq!(
            (first.key.as_str(), first.line),
            ("cores", Some(1)),
            "{err}"
        );
        assert!(
            err.to_string().contains("listen.max_connections_per_shard"),
            "{err}"
        );
    }
}
