//! Routing to a key's owner shard: lookups, hit reads, fills and request
//! coalescing for any key, whichever shard owns it. A key owned here is
//! served by the local store; a key owned elsewhere becomes a message to its
//! owner over the shard mesh, never a lock. Hit bytes are read through this
//! shard's own device handle and verified (sequence, checksum, full key)
//! before a single byte is served. A miss asks the owner whether to lead,
//! follow or fetch alone (`begin_fetch`); leads and followers are handles
//! whose drop tells the owner, so no waiter is left hanging.
//!
//! This file routes and answers peers' messages; `entry` reads and verifies
//! entries, `fill` carries a fill's body to the owner, and `coalesce` holds
//! the lead and follower handles.

mod coalesce;
mod entry;
mod fill;

pub use coalesce::{Fetch, FillReader, FollowFailure, FollowPiece, LeadTicket};
pub use entry::{EntryBytes, ReadFailure, StoredChunk, StoredEntry};
pub use fill::FillHandle;

use crate::cache::index::Location;
use crate::cache::key::CacheKey;
use crate::cache::store::device::Device;
use crate::cache::store::inflight::{FetchRole, LeadRef, Release};
use crate::cache::store::{FillId, FillMeta, FillRead, Lookup, RefreshBody, SegmentId, ShardStore};
use crate::runtime::mesh::ShardPeers;
use futures_channel::oneshot;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// Messages between shards. Replies travel on one-shot channels, so a shard
/// that handles a request never blocks on its peer's queue.
pub enum OwnerMsg {
    Lookup {
        hash: u64,
        reply: oneshot::Sender<Lookup>,
    },
    ReadBuffered {
        segment: SegmentId,
        offset: u32,
        len: u32,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    Remove {
        hash: u64,
    },
    /// A small entry read from the device, for the owner's RAM tier.
    Promote {
        hash: u64,
        seq: u64,
        bytes: Vec<u8>,
    },
    FillBegin {
        id: FillId,
        meta: FillMeta,
        /// The lead this fill answers, when the fetch led.
        lead: Option<LeadRef>,
    },
    BeginFetch {
        hash: u64,
        seen: Option<Location>,
        wait: bool,
        reply: oneshot::Sender<FetchRole>,
    },
    Refresh {
        meta: FillMeta,
        expect: Location,
        body: RefreshBody,
        reply: oneshot::Sender<bool>,
    },
    ReleaseLead {
        hash: u64,
        lead: u64,
        how: Release,
    },
    FillRead {
        id: FillId,
        offset: u64,
        reply: oneshot::Sender<FillRead>,
    },
    FillDetach {
        id: FillId,
    },
    FillData {
        id: FillId,
        data: Vec<u8>,
    },
    FillEnd {
        id: FillId,
        complete: bool,
        /// Answered once the object is indexed (or dropped).
        done: Option<oneshot::Sender<()>>,
    },
}

/// One shard's way to the cache: every call goes to the key's owner shard,
/// here or over the mesh.
pub struct OwnerRouter {
    pub shard: u32,
    pub shards: u32,
    store: Rc<ShardStore>,
    device: Rc<Device>,
    mesh: Option<Rc<ShardPeers<OwnerMsg>>>,
    next_fill: Cell<u64>,
    stats: Arc<CacheStats>,
}

/// Read-side counters, per shard.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub remote_lookups: std::sync::atomic::AtomicU64,
    pub read_failures: std::sync::atomic::AtomicU64,
    /// Hit reads that went to the device (RAM and buffer hits do not).
    pub device_reads: std::sync::atomic::AtomicU64,
}

impl OwnerRouter {
    pub fn new(
        store: Rc<ShardStore>,
        mesh: Option<Rc<ShardPeers<OwnerMsg>>>,
        shard: u32,
        shards: u32,
        stats: Arc<CacheStats>,
    ) -> Self {
        OwnerRouter {
            shard,
            shards,
            device: store.device(),
            store,
            mesh,
            next_fill: Cell::new(0),
            stats,
        }
    }

    pub fn store(&self) -> &Rc<ShardStore> {
        &self.store
    }

    pub fn max_object(&self) -> u64 {
        self.store.max_object()
    }

    fn owner(&self, key: &CacheKey) -> u32 {
        key.owner(self.shards as usize) as u32
    }

    async fn send(&self, to: u32, msg: OwnerMsg) -> bool {
        match &self.mesh {
            // Boxed: the channel's send is a large future, and every
            // future that may ask another shard (a lookup, a fill) would
            // otherwise carry it, and copy it, even when the key is this
            // shard's own (see `spare::Boxed`).
            Some(m) => crate::spare::Boxed::with(|| m.send_to(to, msg)).await,
            None => false,
        }
    }

    pub async fn lookup(&self, key: &CacheKey) -> Lookup {
        let owner = self.owner(key);
        if owner == self.shard {
            return self.store.lookup(key.hash());
        }
        self.stats.remote_lookups.fetch_add(1, Relaxed);
        let (tx, rx) = oneshot::channel();
        if !self
            .send(
                owner,
                OwnerMsg::Lookup {
                    hash: key.hash(),
                    reply: tx,
                },
            )
            .await
        {
            return Lookup::Miss;
        }
        rx.await.unwrap_or(Lookup::Miss)
    }

    pub async fn remove(&self, key: &CacheKey) {
        let owner = self.owner(key);
        if owner == self.shard {
            self.store.remove(key.hash());
        } else {
            self.send(owner, OwnerMsg::Remove { hash: key.hash() })
                .await;
        }
    }
    /// Starts storing a response; the handle carries its body to the owner.
    /// With the lead of a coalesced fetch, the misses waiting on it follow,
    /// also when the lead was given for another key of the same URL (its
    /// variant, or its own key): such keys share their owner.
    pub async fn fill(
        &self,
        key: &CacheKey,
        meta: FillMeta,
        lead: Option<LeadTicket<'_>>,
    ) -> FillHandle<'_> {
        let n = self.next_fill.get();
        self.next_fill.set(n + 1);
        let id = FillId {
            from: self.shard,
            n,
        };
        let owner = self.owner(key);
        debug_assert!(lead.as_ref().is_none_or(|l| l.owner == owner));
        let lead = lead.map(LeadTicket::into_filled);
        if owner == self.shard {
            self.store.fill_begin(id, meta, lead);
        } else {
            self.send(owner, OwnerMsg::FillBegin { id, meta, lead })
                .await;
        }
        FillHandle {
            router: self,
            owner,
            id,
            ended: false,
        }
    }

    /// Stores a revalidated response with the body already stored (see
    /// `ShardStore::refresh`). Returns whether the stored copy was replaced.
    pub async fn refresh(
        &self,
        key: &CacheKey,
        meta: FillMeta,
        expect: Location,
        body: RefreshBody,
    ) -> bool {
        let owner = self.owner(key);
        if owner == self.shard {
            return self.store.refresh(meta, expect, body).await;
        }
        let (reply, rx) = oneshot::channel();
        let msg = OwnerMsg::Refresh {
            meta,
            expect,
            body,
            reply,
        };
        self.send(owner, msg).await && rx.await.unwrap_or(false)
    }

    /// Serves a message from another shard. Fill messages are taken in
    /// arrival order; only a fill far behind its writer
    /// (`ShardStore::fill_data`) waits for the device: a refresh and a
    /// fill's end run beside the messages that follow.
    pub async fn handle(&self, msg: OwnerMsg) {
        match msg {
            OwnerMsg::Lookup { hash, reply } => {
                let _ = reply.send(self.store.lookup(hash));
            }
            OwnerMsg::ReadBuffered {
                segment,
                offset,
                len,
                reply,
            } => {
                let _ = reply.send(self.store.read_buffered(segment, offset, len));
            }
            OwnerMsg::Remove { hash } => {
                self.store.remove(hash);
            }
            OwnerMsg::Promote { hash, seq, bytes } => self.store.promote(hash, seq, &bytes),
            OwnerMsg::FillBegin { id, meta, lead } => self.store.fill_begin(id, meta, lead),
            OwnerMsg::BeginFetch {
                hash,
                seen,
                wait,
                reply,
            } => self.store.begin_fetch(hash, seen, wait, reply),
            OwnerMsg::Refresh {
                meta,
                expect,
                body,
                reply,
            } => {
                // Its write may wait for the device: it runs beside the
                // messages that follow (lookups among them), and replaces
                // the stored copy only if that is still current then.
                let store = self.store.clone();
                crate::runtime::task::spawn_detached(async move {
                    let _ = reply.send(store.refresh(meta, expect, body).await);
                });
            }
            OwnerMsg::ReleaseLead { hash, lead, how } => self.store.release_lead(hash, lead, how),
            OwnerMsg::FillRead { id, offset, reply } => self.store.fill_read(id, offset, reply),
            OwnerMsg::FillDetach { id } => self.store.fill_detach(id),
            OwnerMsg::FillData { id, data } => self.store.fill_data(id, &data).await,
            // Ending a fill writes its last entry, which may wait for the
            // device: it runs beside the messages that follow, which
            // therefore do not wait behind a segment write. A fill's data
            // is all staged by now (taken in order).
            OwnerMsg::FillEnd { id, complete, done } => {
                let store = self.store.clone();
                crate::runtime::task::spawn_detached(async move {
                    store.fill_end(id, complete).await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                });
            }
        }
    }
}
