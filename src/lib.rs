//! edgeslab: a thread-per-core CDN cache appliance.
//!
//! One binary runs as an edge (next to viewers) or as a regional tier. Each
//! core runs a glommio executor that owns a shard: its listener socket, its
//! region of the NVMe-backed slab, its part of the index and its origin
//! connection pool. Keys are owned by one shard (by hash); other shards reach
//! them by message, never by lock.
//!
//! The modules are the architecture (see DESIGN.md and README's Layout):
//! `config` (schema and validation), `runtime` (executors, topology, signals,
//! and the only task/sync/mesh primitives), `net` (listeners and
//! connections), `http` (pure HTTP/1.1 codec), `gateway` (the proxy's pure
//! rules and typed decisions), `cache` (key, policy, Vary variants, index, owner
//! routing, store), `proxy` (the async request pipeline), `upstream` (origin client,
//! pool and exchange), `admin` (metrics) and `log_limit` (rate-limited
//! warnings).

pub mod access_log;
pub mod admin;
pub mod cache;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod http;
pub mod irq;
pub mod log_limit;
pub mod net;
pub mod proxy;
pub mod runtime;
pub mod spare;
pub mod tune;
pub mod upstream;
