//! What a configuration becomes before start-up opens a file, a socket or
//! a thread: the upstreams it names, the device geometry its shard count
//! gives, and each shard's store options, request settings and origin
//! settings. `start` checks the plan first, so anything a configuration can
//! make go wrong here is an error that names it, never a panic in a shard;
//! the `startup` fuzz target drives this with every configuration the loader
//! accepts, at any shard count.

use super::StartError;
use crate::cache::bans::{TagField, TagFields, TagSeparator};
use crate::cache::store::StoreOptions;
use crate::cache::store::device::DeviceError;
use crate::cache::store::eviction::EvictionParams;
use crate::cache::store::geometry::Geometry;
use crate::config::Config;
use crate::proxy::settings::{ProxySettings, origin_settings};
use crate::upstream::{OriginSettings, UpstreamPlan};
use std::os::unix::fs::FileTypeExt;

/// What one shard is built with.
pub struct ShardPlan {
    pub store: StoreOptions,
    pub settings: ProxySettings,
    pub origin: OriginSettings,
    pub tags: TagFields,
}

impl ShardPlan {
    /// `origin_authority` is the `Host` a request that named none is sent
    /// with (the default group's primary origin).
    pub fn new(c: &Config, shards: u32, origin_authority: String) -> ShardPlan {
        ShardPlan {
            store: StoreOptions {
                max_object: c.cache.max_object_size.get(),
                ram_bytes: (c.cache.ram_size.get() / u64::from(shards.max(1))) as usize,
                ram_max_object: c.cache.ram_max_object.get() as usize,
                eviction: EvictionParams::default(),
                hit_for_pass: c.cache.hit_for_pass.get(),
            },
            settings: ProxySettings::from_config(c, origin_authority),
            origin: origin_settings(c),
            tags: tag_fields(&c.invalidation.tag_headers),
        }
    }
}

/// Derives everything start-up derives from `c` for `shards` shards, and
/// fails as `start` would. A cache file (not a block device) is laid out
/// at `cache.size`; a block device's size is known only once it is opened.
pub fn check(c: &Config, shards: u32) -> Result<(), StartError> {
    let upstreams = UpstreamPlan::from_config(c).map_err(StartError::Origin)?;
    let path = &c.cache.path;
    let block_device = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device());
    if !block_device {
        Geometry::new(
            c.cache.size.get(),
            c.cache.segment_size.get(),
            shards,
            c.cache.avg_object_size.get(),
        )
        .map_err(|source| DeviceError::TooSmall {
            path: path.clone(),
            source,
        })?;
    }
    ShardPlan::new(c, shards, upstreams.default_authority());
    Ok(())
}

/// What `check-config` adds to the file's own checks: the configuration
/// against this host, as `serve` would meet it. The cores must be online,
/// the plan must hold at their count, the cache path must be a block
/// device this user may read and write or a file that may be created there,
/// and the invalidation journal's directory must exist. Each problem comes
/// with the key it belongs to.
pub fn check_host(c: &Config) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let topo = super::topology::Topology::detect();
    let shards = match super::pick_cores(&c.cores, &topo) {
        Ok(cores) => cores.len() as u32,
        Err(StartError::Cores(e)) => {
            problems.push(("cores", e));
            return problems;
        }
        Err(e) => {
            problems.push(("cores", e.to_string()));
            return problems;
        }
    };
    match check(c, shards) {
        Ok(()) => {}
        Err(StartError::Origin(e)) => problems.push(("origin", e)),
        Err(e) => problems.push(("cache.size", e.to_string())),
    }
    let path = &c.cache.path;
    let writable = |p: &std::path::Path| {
        let Ok(name) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
            return false;
        };
        // SAFETY: a NUL-terminated path that outlives the call.
        unsafe { libc::access(name.as_ptr(), libc::R_OK | libc::W_OK) == 0 }
    };
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_block_device() => {
            if !writable(path) {
                problems.push((
                    "cache.path",
                    format!(
                        "block device {}: this user may not read and write it",
                        path.display()
                    ),
                ));
            }
        }
        Ok(m) if m.is_dir() => problems.push((
            "cache.path",
            format!("{} is a directory; name a file in it", path.display()),
        )),
        Ok(_) => {
            if !writable(path) {
                problems.push((
                    "cache.path",
                    format!("{}: this user may not read and write it", path.display()),
                ));
            }
        }
        Err(_) => match crate::cache::store::device::check_file_path(path) {
            Err(e) => problems.push(("cache.path", e.to_string())),
            Ok(()) => {
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
                let parent = parent.unwrap_or(std::path::Path::new("."));
                if !writable(parent) {
                    problems.push((
                        "cache.path",
                        format!(
                            "cannot create {}: this user may not write to {}",
                            path.display(),
                            parent.display()
                        ),
                    ));
                }
            }
        },
    }
    if let crate::access_log::Destination::File(log) = crate::access_log::Destination::of(&c.log)
        && c.log.access_log
        && let Some(dir) = log.parent().filter(|p| !p.as_os_str().is_empty())
        && !dir.is_dir()
    {
        problems.push((
            "log.access_log_path",
            format!(
                "the directory {} of the access log does not exist",
                dir.display()
            ),
        ));
    }
    let journal = c.invalidation.journal_path(path);
    // A journal beside a cache whose directory was already reported
    // missing is the same problem: said once.
    let cache_dir_reported =
        problems.iter().any(|(k, _)| *k == "cache.path") && journal.parent() == path.parent();
    if let Some(dir) = journal.parent().filter(|p| !p.as_os_str().is_empty())
        && !dir.is_dir()
        && !cache_dir_reported
    {
        problems.push((
            "invalidation.journal",
            format!(
                "the directory {} of the journal {} does not exist",
                dir.display(),
                journal.display()
            ),
        ));
    }
    problems
}

/// `Surrogate-Key` lists tags separated by spaces; other fields by commas.
fn tag_fields(names: &[String]) -> TagFields {
    TagFields::new(
        names
            .iter()
            .map(|n| {
                let sep = match n.eq_ignore_ascii_case("surrogate-key") {
                    true => TagSeparator::Whitespace,
                    false => TagSeparator::Comma,
                };
                TagField::new(n, sep)
            })
            .collect(),
    )
}
