//! Request coalescing as a shard sees it: asking a key's owner whether a
//! miss leads, follows or fetches alone (`cache::store::inflight` decides),
//! and the handles that carry the answer — a `LeadTicket` whose drop tells
//! the owner the lead failed, and a `FillReader` that reads a growing fill
//! and detaches when dropped — so no waiter is ever left hanging.

use super::{OwnerMsg, OwnerRouter, StoredChunk};
use crate::cache::index::Location;
use crate::cache::key::CacheKey;
use crate::cache::store::inflight::{FetchRole, FollowInfo, LeadRef, Release};
use crate::cache::store::{FillId, FillRead};
use futures_channel::oneshot;
use std::time::Duration;

/// How long an ask waits for the owner's answer when it does not park
/// (and at least, when it does). An answer that comes too late is not
/// lost: a lead the asker never received is taken back by the owner.
const OWNER_ANSWER: Duration = Duration::from_secs(2);

impl OwnerRouter {
    /// A miss for `key` asks its owner what to do: lead the fetch, follow
    /// one under way, or fetch alone. `seen` is where the lookup found the
    /// (stale) copy, if it found one. Waiting for a leader's head is bounded
    /// by `wait`; past it the miss fetches alone.
    pub async fn begin_fetch(
        &self,
        key: &CacheKey,
        seen: Option<Location>,
        wait: Duration,
    ) -> Fetch<'_> {
        self.ask_to_fetch(key, seen, Some(wait)).await
    }

    /// Leads a fetch of `key` only if none is under way (a background
    /// revalidation): `Fetch::Busy` otherwise, at once.
    pub async fn lead_if_idle(&self, key: &CacheKey, seen: Option<Location>) -> Fetch<'_> {
        self.ask_to_fetch(key, seen, None).await
    }

    async fn ask_to_fetch(
        &self,
        key: &CacheKey,
        seen: Option<Location>,
        wait: Option<Duration>,
    ) -> Fetch<'_> {
        let owner = self.owner(key);
        let hash = key.hash();
        let (reply, mut rx) = oneshot::channel();
        let parks = wait.is_some();
        if owner == self.shard {
            self.store.begin_fetch(hash, seen, parks, reply);
        } else if !self
            .send(
                owner,
                OwnerMsg::BeginFetch {
                    hash,
                    seen,
                    wait: parks,
                    reply,
                },
            )
            .await
        {
            return Fetch::Alone;
        }
        // The owner answers a non-parking ask at once, but "at once" is a
        // trip through its queue, which a busy machine can stretch well past
        // a millisecond; only an owner that never answers is given up on.
        let wait = wait.unwrap_or(Duration::ZERO).max(OWNER_ANSWER);
        let timeout = async {
            crate::runtime::task::sleep(wait).await;
            Err(oneshot::Canceled)
        };
        let role = match futures_lite::future::or(&mut rx, timeout).await {
            Ok(role) => Ok(role),
            // Closing first makes the race with a late answer exact: either
            // it is already here and is used, or the owner's send fails and
            // the owner takes back what it would have handed out.
            Err(gave_up) => {
                rx.close();
                rx.try_recv().ok().flatten().ok_or(gave_up)
            }
        };
        match role {
            Ok(FetchRole::Lead(lead)) => Fetch::Lead(LeadTicket {
                router: self,
                owner,
                hash,
                lead,
                done: false,
            }),
            Ok(FetchRole::Follow(info)) => Fetch::Follow(FillReader {
                router: self,
                owner,
                offset: 0,
                info,
            }),
            Ok(FetchRole::Retry) => Fetch::Retry,
            Ok(FetchRole::Stored) => Fetch::Stored,
            Ok(FetchRole::Alone) => Fetch::Alone,
            Ok(FetchRole::Busy) => Fetch::Busy,
            // The owner did not answer in time (a follow handed out after
            // this is dropped by the owner's idle pruning).
            Err(_) => Fetch::TimedOut,
        }
    }

    async fn fill_read(&self, owner: u32, id: FillId, offset: u64) -> FillRead {
        let (reply, rx) = oneshot::channel();
        if owner == self.shard {
            self.store.fill_read(id, offset, reply);
        } else if !self
            .send(owner, OwnerMsg::FillRead { id, offset, reply })
            .await
        {
            return FillRead::Gone;
        }
        rx.await.unwrap_or(FillRead::Gone)
    }
}

/// What a miss does, with the handle it needs.
pub enum Fetch<'a> {
    /// Fetch from the origin; fill with this ticket or release it.
    Lead(LeadTicket<'a>),
    /// Read another request's fill as it grows.
    Follow(FillReader<'a>),
    /// Fetch from the origin without coalescing: the key was just found
    /// uncacheable (hit-for-pass).
    Alone,
    /// No answer from the owner in time: fetch without coalescing.
    TimedOut,
    /// A fetch is under way (asked with `lead_if_idle`).
    Busy,
    /// The leader failed: ask again.
    Retry,
    /// A newer copy was indexed: look it up again.
    Stored,
}

/// The right (and duty) to fetch a key for every miss waiting on it. Hand
/// it to `fill`, or `release` it; dropped, it releases as failed, so the
/// waiters ask again rather than hang.
pub struct LeadTicket<'a> {
    pub(super) router: &'a OwnerRouter,
    pub(super) owner: u32,
    pub(super) hash: u64,
    pub(super) lead: u64,
    pub(super) done: bool,
}

impl LeadTicket<'_> {
    /// The lead a fill carries to its owner.
    pub(super) fn into_filled(mut self) -> LeadRef {
        self.done = true;
        LeadRef {
            hash: self.hash,
            lead: self.lead,
        }
    }

    /// Ends the lead without a fill.
    pub async fn release(mut self, how: Release) {
        self.done = true;
        let (hash, lead) = (self.hash, self.lead);
        if self.owner == self.router.shard {
            self.router.store.release_lead(hash, lead, how);
        } else {
            self.router
                .send(self.owner, OwnerMsg::ReleaseLead { hash, lead, how })
                .await;
        }
    }
}

impl Drop for LeadTicket<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (hash, lead, how) = (self.hash, self.lead, Release::Failed);
        if self.owner == self.router.shard {
            self.router.store.release_lead(hash, lead, how);
        } else if let Some(m) = &self.router.mesh {
            // A full queue loses this message; the owner then replaces the
            // lead once it is older than `inflight::LEAD_TIMEOUT`.
            let _ = m.try_send_to(self.owner, OwnerMsg::ReleaseLead { hash, lead, how });
        }
    }
}

/// Why a follower could not go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowFailure {
    /// The fill ended short (the origin cut the body) or was not kept.
    Truncated,
    /// The fill is gone, or a chunk of it could not be read.
    Unreadable,
}

/// A piece of a followed fill.
pub enum FollowPiece {
    Mem(Vec<u8>),
    Chunk { chunk: StoredChunk, skip: usize },
}

impl FollowPiece {
    pub fn data(&self) -> &[u8] {
        match self {
            FollowPiece::Mem(v) => v,
            FollowPiece::Chunk { chunk, skip } => &chunk.data()[*skip..],
        }
    }
}

/// Reads another request's fill from the start, as it grows. Dropping it
/// tells the owner this follower left.
pub struct FillReader<'a> {
    pub(super) router: &'a OwnerRouter,
    pub(super) owner: u32,
    pub(super) offset: u64,
    pub(super) info: FollowInfo,
}

impl FillReader<'_> {
    /// The stored head and freshness of what is being filled.
    pub fn info(&self) -> &FollowInfo {
        &self.info
    }

    /// Where the next read starts (body bytes from the start).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Starts reading at `offset` instead of where the reader is: a
    /// follower that wants one range skips what comes before it.
    pub fn seek(&mut self, offset: u64) {
        self.offset = offset;
    }

    /// The next piece of the body, `None` once it ended whole. Waits for the
    /// origin's next bytes at most `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<FollowPiece>, FollowFailure> {
        let read = self
            .router
            .fill_read(self.owner, self.info.fill, self.offset);
        let timeout = async {
            crate::runtime::task::sleep(wait).await;
            FillRead::Gone
        };
        let piece = match futures_lite::future::or(read, timeout).await {
            FillRead::Bytes(b) => FollowPiece::Mem(b),
            FillRead::Chunk {
                index,
                chunk,
                nonce,
                buffered,
            } => {
                let start = index as u64 * self.router.store.chunk_size();
                let stored = self
                    .router
                    .read_chunk_of(self.owner, self.info.hash, nonce, index, &chunk, &buffered)
                    .await
                    .map_err(|_| FollowFailure::Unreadable)?;
                let skip = (self.offset - start) as usize;
                if skip >= stored.data().len() {
                    return Err(FollowFailure::Unreadable);
                }
                FollowPiece::Chunk {
                    chunk: stored,
                    skip,
                }
            }
            FillRead::End { complete, total } => {
                return if complete && total == self.offset {
                    Ok(None)
                } else {
                    Err(FollowFailure::Truncated)
                };
            }
            FillRead::Gone => return Err(FollowFailure::Unreadable),
        };
        self.offset += piece.data().len() as u64;
        Ok(Some(piece))
    }
}

impl Drop for FillReader<'_> {
    fn drop(&mut self) {
        let id = self.info.fill;
        if self.owner == self.router.shard {
            self.router.store.fill_detach(id);
        } else if let Some(m) = &self.router.mesh {
            let _ = m.try_send_to(self.owner, OwnerMsg::FillDetach { id });
        }
    }
}
