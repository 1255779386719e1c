//! The storage engine as the library-level store tests drive it: a small
//! real O_DIRECT device, one shard's store opened on it, and an executor to
//! run each test's async body on.

use edgeslab::cache::owner::OwnerRouter;
use edgeslab::cache::store::device::{self, DeviceSpec, PreparedDevice};
use edgeslab::cache::store::eviction::EvictionParams;
use edgeslab::cache::store::{ShardStore, StoreOptions, StoreStats};
use std::path::Path;
use std::sync::Arc;

/// A 24 MiB device of 1 MiB segments for one shard, at `path`.
pub fn prepare(path: &Path) -> PreparedDevice {
    device::prepare(&DeviceSpec {
        path,
        size: 24 << 20,
        segment_size: 1 << 20,
        shards: 1,
        avg_object_size: 8 << 10,
        reformat: false,
        reformat_if_corrupt: false,
    })
    .unwrap()
}

/// Opens (recovers) shard 0's store on `dev` with a RAM tier of `ram`
/// bytes, and the router a single-shard node uses to reach it.
pub async fn open(dev: &PreparedDevice, ram: usize) -> OwnerRouter {
    let opts = StoreOptions {
        max_object: 8 << 20,
        ram_bytes: ram,
        ram_max_object: 64 << 10,
        eviction: EvictionParams::default(),
        hit_for_pass: std::time::Duration::ZERO,
    };
    let store = ShardStore::open(dev, 0, &opts, Arc::new(StoreStats::default()))
        .await
        .unwrap();
    OwnerRouter::new(store, None, 0, 1, Default::default())
}

/// Runs `f` to completion on an executor of its own.
pub fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}
