//! The cache: keys, the freshness policy (pure), `Vary` variants (pure
//! rules in `vary`), the compact index, the RAM tier (its large chunks in files whose pages
//! a hit lends to the socket, `lend`), the slab store on the
//! device, and the per-shard owner router that sends every lookup, hit read
//! and fill to the key's owner shard; and the invalidations (`bans`) checked
//! against each entry a lookup finds.

pub mod bans;
pub mod index;
pub mod key;
pub mod lend;
pub mod owner;
pub mod parts;
pub mod policy;
pub mod ram;
pub mod store;
pub mod variants;
pub mod vary;
