//! The sending side of the shard mesh: one bounded channel from this shard to
//! every other. Messages to a key's owner shard travel here instead of
//! taking a lock. The receiving side is driven by `runtime` itself.

use glommio::channels::channel_mesh::Senders;

/// This shard's senders to its peers.
pub struct ShardPeers<T: Send> {
    senders: Senders<T>,
}

impl<T: Send> ShardPeers<T> {
    pub(crate) fn new(senders: Senders<T>) -> ShardPeers<T> {
        ShardPeers { senders }
    }

    /// Sends to `shard`, waiting while its queue is full. False when the peer
    /// is gone (it stopped) or `shard` is this shard.
    pub async fn send_to(&self, shard: u32, msg: T) -> bool {
        self.senders.send_to(shard as usize, msg).await.is_ok()
    }

    /// Sends without waiting; false when the queue is full or the peer gone.
    pub fn try_send_to(&self, shard: u32, msg: T) -> bool {
        self.senders.try_send_to(shard as usize, msg).is_ok()
    }
}
