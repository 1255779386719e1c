//! The cache: keys, the freshness policy (pure), the compact index, the RAM
//! tier, the slab store on the device, and the per-shard service that routes every lookup
//! and fill to the key's owner shard.

pub mod index;
pub mod key;
pub mod policy;
pub mod ram;
pub mod service;
pub mod store;
