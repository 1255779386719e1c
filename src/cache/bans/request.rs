//! The body of `POST /invalidations`: `{"paths": [...], "tags": [...]}`
//! (either or both, optionally with the `"id"` a peer propagating it gave
//! it), read with serde (unknown fields refused), then each item checked
//! and turned into a [`Rule`]. An error is one sentence naming the field,
//! fit for the 400's body. Paths are normalised as request targets are, so
//! a rule names what keys name; a path that could never match a key (not
//! starting with `/`, with a space, a fragment or a byte outside visible
//! ASCII) is refused rather than accepted as a ban that bans nothing.

use super::Rule;
use crate::http::target::normalise_origin_form;
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

/// Most items one list (`paths` or `tags`) may hold.
pub const MAX_ITEMS: usize = 1000;
/// Longest path or tag, in bytes.
pub const MAX_ITEM_BYTES: usize = 8192;
const MAX_ID_BYTES: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    paths: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    id: Option<String>,
}

/// A checked invalidation: its rules, paths first, in the body's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidationRequest {
    /// Set when a peer node propagates an invalidation it already named.
    pub id: Option<String>,
    pub rules: Vec<Rule>,
}

/// Why a body was refused (a 400), naming the field: `paths[1]: "*" only
/// at the end`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadInvalidation(pub String);

impl InvalidationRequest {
    pub fn parse(body: &[u8]) -> Result<InvalidationRequest, BadInvalidation> {
        let body: Body = serde_json::from_slice(body)
            .map_err(|e| BadInvalidation(format!("invalid JSON body: {e}")))?;
        if body.paths.is_none() && body.tags.is_none() {
            return Err(BadInvalidation(
                r#"give "paths", "tags" or both"#.to_owned(),
            ));
        }
        let mut rules = Vec::new();
        for (field, items, rule) in [
            (
                "paths",
                &body.paths,
                path_rule as fn(&str) -> Result<Rule, String>,
            ),
            ("tags", &body.tags, tag_rule),
        ] {
            let Some(items) = items else { continue };
            if items.is_empty() {
                return Err(BadInvalidation(format!(
                    "{field}: empty list (leave the field out instead)"
                )));
            }
            if items.len() > MAX_ITEMS {
                return Err(BadInvalidation(format!(
                    "{field}: more than {MAX_ITEMS} items"
                )));
            }
            for (i, item) in items.iter().enumerate() {
                let r =
                    rule(item).map_err(|why| BadInvalidation(format!("{field}[{i}]: {why}")))?;
                rules.push(r);
            }
        }
        if let Some(id) = &body.id {
            check_id(id)?;
        }
        Ok(InvalidationRequest { id: body.id, rules })
    }

    /// The id the peer gave, or a new one.
    pub fn id_or_new(&self, now_ms: u64) -> String {
        self.id.clone().unwrap_or_else(|| new_id(now_ms))
    }
}

/// A new invalidation id: 16 hex digits hashed from the time and 64 bits
/// from the OS, so two nodes naming invalidations at the same instant do
/// not collide.
pub fn new_id(now_ms: u64) -> String {
    let random = crate::cache::store::device::random_u64();
    let mut seed = [0u8; 16];
    seed[..8].copy_from_slice(&now_ms.to_le_bytes());
    seed[8..].copy_from_slice(&random.to_le_bytes());
    format!("{:016x}", xxh3_64(&seed))
}

/// `/a.jpg` → exact, `/images/*` → prefix `/images/`, `/*` → prefix `/`.
fn path_rule(path: &str) -> Result<Rule, String> {
    if !path.starts_with('/') {
        return Err(r#"must start with "/""#.to_owned());
    }
    if path.len() > MAX_ITEM_BYTES {
        return Err(format!("longer than {MAX_ITEM_BYTES} bytes"));
    }
    if path.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(
            "only visible ASCII: percent-encode spaces, control characters and other bytes"
                .to_owned(),
        );
    }
    if path.contains('#') {
        return Err(r##"no "#": a fragment never reaches the cache"##.to_owned());
    }
    let (body, is_prefix) = match path.strip_suffix('*') {
        Some(body) => (body, true),
        None => (path, false),
    };
    if body.contains('*') {
        return Err(r#""*" only at the end"#.to_owned());
    }
    // A prefix normalises like a path. Where its last segment is `.` or
    // `..` that widens it (`/a/b/..*` → `/a/`), never narrows it: one more
    // fetch at worst.
    let normal = normalise_origin_form(body)
        .map_err(|e| e.message().to_owned())?
        .into_owned();
    Ok(if is_prefix {
        Rule::Prefix(normal)
    } else {
        Rule::Exact(normal)
    })
}

fn tag_rule(tag: &str) -> Result<Rule, String> {
    if tag.is_empty() {
        return Err("empty".to_owned());
    }
    if tag.len() > MAX_ITEM_BYTES {
        return Err(format!("longer than {MAX_ITEM_BYTES} bytes"));
    }
    // Tag fields are split on whitespace: such a tag could never match.
    if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("no whitespace or control characters".to_owned());
    }
    Ok(Rule::Tag(tag.to_owned()))
}

fn check_id(id: &str) -> Result<(), BadInvalidation> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(BadInvalidation(format!(
            r#"id: 1 to {MAX_ID_BYTES} characters of A-Z, a-z, 0-9, "-", "_" and ".""#
        )))
    }
}
