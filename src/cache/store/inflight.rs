//! Request coalescing at a key's owner: which keys are being fetched, who
//! waits for them, and which were just found uncacheable. The first miss for
//! a key leads (it fetches); later misses wait until the leader's response
//! head is known, then follow its fill as it grows, or fetch on their own
//! when the response is not stored. The leader's response may be stored
//! under another key of its URL (a `Vary` variant): the fill then answers
//! both keys, and followers check that they select the same variant. Pure
//! bookkeeping: no I/O, no clock reads (`now` is an argument). A waiter is
//! never left hanging: every lead ends in a fill, a release, or its age
//! passing `LEAD_TIMEOUT`.

use super::{FillId, FillMeta};
use crate::cache::index::Location;
use crate::cache::vary::Variant;
use futures_channel::oneshot;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A lead older than this with no fill and no release is taken as lost (its
/// task vanished without a word), and the next miss leads instead.
pub const LEAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Keys remembered as uncacheable at most; the oldest go first.
const UNCACHEABLE_CAP: usize = 65536;

/// What a miss does, as its key's owner decides.
#[derive(Debug)]
pub enum FetchRole {
    /// Fetch it, then fill with this lead or release it.
    Lead(u64),
    /// Another request is fetching it: read its fill.
    Follow(FollowInfo),
    /// Fetch without coalescing: the key was just found uncacheable
    /// (hit-for-pass), or coalescing gave up.
    Alone,
    /// The leader failed: ask again (one of the waiters becomes the leader).
    Retry,
    /// A copy other than the one the lookup saw is now indexed: look again.
    Stored,
    /// A fetch is under way and the asker would not wait for it.
    Busy,
}

/// What a follower needs to answer from a fill.
#[derive(Clone, Debug)]
pub struct FollowInfo {
    pub fill: FillId,
    /// The hash of the key the fill is stored under (its chunks carry it):
    /// the followed key's, or the variant's the leader's response selected.
    pub hash: u64,
    /// When the response varies: the variant it is, so that a follower can
    /// check that its own request selects the same (RFC 9111 §4.1).
    pub variant: Option<Variant>,
    /// The response head as it is stored (and served to hits).
    pub head: Vec<u8>,
    /// The body length the origin declared, when it did.
    pub declared_len: Option<u64>,
    pub born_ms: u64,
    pub expires_ms: u64,
    /// The follower asked after the response head had arrived: for it the
    /// fill is a stored response like any other, reusable only as the
    /// request and the response's freshness allow (a waiter that asked
    /// before shares the answer to the fetch it waited for).
    pub late: bool,
}

impl FollowInfo {
    pub fn of(fill: FillId, meta: &FillMeta) -> FollowInfo {
        FollowInfo {
            fill,
            hash: meta.hash,
            variant: meta.variant.as_ref().map(|v| v.variant.clone()),
            head: meta.head.clone(),
            declared_len: meta.declared_len,
            born_ms: meta.born_ms,
            expires_ms: meta.expires_ms,
            late: false,
        }
    }
}

/// A lead as a fill names it: the key hash it was given for and its number.
/// The fill may be stored under another key of the same URL (a variant, or
/// the URL itself when a variant's response no longer varies); the misses
/// waiting on the lead follow it all the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeadRef {
    pub hash: u64,
    pub lead: u64,
}

/// How a lead ended without a fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// The response may not be stored: waiters fetch on their own, and so
    /// do later misses for a while (hit-for-pass).
    Uncacheable,
    /// The fetch failed before a response head: waiters ask again.
    Failed,
    /// The stored copy was validated and refreshed (a 304): waiters look
    /// again and find it fresh.
    Refreshed,
}

enum KeyState {
    /// A leader is fetching; its response head has not arrived.
    Fetching {
        lead: u64,
        since: Instant,
        waiters: Vec<oneshot::Sender<FetchRole>>,
    },
    /// The leader's response is being stored; misses follow the fill.
    Filling(FollowInfo),
}

/// The coalescing state of one owner shard.
pub struct InFlight {
    keys: HashMap<u64, KeyState>,
    /// Keys found uncacheable, and until when misses for them go alone.
    uncacheable: HashMap<u64, Instant>,
    hit_for_pass: Duration,
    next_lead: u64,
}

impl InFlight {
    pub fn new(hit_for_pass: Duration) -> InFlight {
        InFlight {
            keys: HashMap::new(),
            uncacheable: HashMap::new(),
            hit_for_pass,
            next_lead: 1,
        }
    }

    /// A miss for `hash`: answers `reply` at once, or parks it until the
    /// leader's head is known. `indexed` is where the index points now;
    /// `seen` where it pointed when the miss was decided.
    pub fn begin(
        &mut self,
        hash: u64,
        indexed: Option<Location>,
        seen: Option<Location>,
        wait: bool,
        now: Instant,
        reply: oneshot::Sender<FetchRole>,
    ) -> Option<FollowerJoined> {
        if indexed.is_some() && indexed != seen {
            let _ = reply.send(FetchRole::Stored);
            return None;
        }
        if let Some(until) = self.uncacheable.get(&hash) {
            if now < *until {
                let _ = reply.send(FetchRole::Alone);
                return None;
            }
            self.uncacheable.remove(&hash);
        }
        match self.keys.get_mut(&hash) {
            Some(KeyState::Filling(_)) | Some(KeyState::Fetching { .. }) if !wait => {
                let _ = reply.send(FetchRole::Busy);
                None
            }
            Some(KeyState::Filling(info)) => {
                let fill = info.fill;
                let late = FollowInfo {
                    late: true,
                    ..info.clone()
                };
                let delivered = reply.send(FetchRole::Follow(late)).is_ok();
                delivered.then_some(FollowerJoined(fill))
            }
            Some(KeyState::Fetching { since, waiters, .. })
                if now.saturating_duration_since(*since) < LEAD_TIMEOUT =>
            {
                waiters.push(reply);
                None
            }
            _ => {
                // Nothing in flight, or a lead that was lost: this miss leads.
                let lead = self.next_lead;
                self.next_lead += 1;
                let old = self.keys.insert(
                    hash,
                    KeyState::Fetching {
                        lead,
                        since: now,
                        waiters: Vec::new(),
                    },
                );
                if let Some(KeyState::Fetching { waiters, .. }) = old {
                    for w in waiters {
                        let _ = w.send(FetchRole::Retry);
                    }
                }
                if reply.send(FetchRole::Lead(lead)).is_err() {
                    // The asker stopped waiting before the answer came: no
                    // one leads, so no one may hold the key as if it did.
                    self.keys.remove(&hash);
                }
                None
            }
        }
    }

    /// The leader's response is being stored as `info.fill`: its waiters
    /// follow. Returns how many followers were handed the fill. A lead that
    /// is no longer current (it timed out and another took over) changes
    /// nothing.
    pub fn filling(&mut self, hash: u64, lead: u64, info: FollowInfo) -> u32 {
        let Some(KeyState::Fetching { lead: current, .. }) = self.keys.get(&hash) else {
            return 0;
        };
        if *current != lead {
            return 0;
        }
        let Some(KeyState::Fetching { waiters, .. }) =
            self.keys.insert(hash, KeyState::Filling(info.clone()))
        else {
            return 0;
        };
        let mut followers = 0;
        for w in waiters {
            if w.send(FetchRole::Follow(info.clone())).is_ok() {
                followers += 1;
            }
        }
        followers
    }

    /// A lead ended without a fill.
    pub fn release(&mut self, hash: u64, lead: u64, how: Release, now: Instant) {
        let current = matches!(
            self.keys.get(&hash),
            Some(KeyState::Fetching { lead: l, .. }) if *l == lead
        );
        if !current {
            return;
        }
        let Some(KeyState::Fetching { waiters, .. }) = self.keys.remove(&hash) else {
            return;
        };
        let role = match how {
            Release::Uncacheable => {
                self.remember_uncacheable(hash, now);
                || FetchRole::Alone
            }
            Release::Failed | Release::Refreshed => || FetchRole::Retry,
        };
        for w in waiters {
            let _ = w.send(role());
        }
    }

    /// A fill stored under `hash` answers a lead given for another key of
    /// its URL: misses for `hash` follow it too, unless that key is in
    /// flight already.
    pub fn adopt(&mut self, hash: u64, info: FollowInfo) {
        self.keys
            .entry(hash)
            .or_insert_with(|| KeyState::Filling(info));
    }

    /// The fill ended (stored or not): later misses look again or lead.
    pub fn fill_ended(&mut self, hash: u64, fill: FillId) {
        if matches!(self.keys.get(&hash), Some(KeyState::Filling(info)) if info.fill == fill) {
            self.keys.remove(&hash);
        }
    }

    fn remember_uncacheable(&mut self, hash: u64, now: Instant) {
        if self.hit_for_pass.is_zero() {
            return;
        }
        if self.uncacheable.len() >= UNCACHEABLE_CAP {
            self.uncacheable.retain(|_, until| *until > now);
            if self.uncacheable.len() >= UNCACHEABLE_CAP {
                // Still full of live entries: forget the one ending soonest.
                if let Some((&oldest, _)) = self.uncacheable.iter().min_by_key(|(_, u)| **u) {
                    self.uncacheable.remove(&oldest);
                }
            }
        }
        self.uncacheable.insert(hash, now + self.hit_for_pass);
    }

    /// Keys being fetched or filled (for tests and metrics).
    pub fn in_flight(&self) -> usize {
        self.keys.len()
    }
}

/// A follower was handed `FillId` directly by `begin`: the fill counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerJoined(pub FillId);

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> FillMeta {
        FillMeta {
            key: "k".into(),
            hash: 7,
            head: b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
            declared_len: Some(3),
            born_ms: 1,
            expires_ms: 2,
            variant: None,
        }
    }

    fn ask(f: &mut InFlight, hash: u64, now: Instant) -> oneshot::Receiver<FetchRole> {
        let (tx, rx) = oneshot::channel();
        f.begin(hash, None, None, true, now, tx);
        rx
    }

    fn got(mut rx: oneshot::Receiver<FetchRole>) -> Option<FetchRole> {
        rx.try_recv().expect("sender kept or answered")
    }

    const FILL: FillId = FillId { from: 1, n: 9 };

    #[test]
    fn the_first_miss_leads_and_the_others_follow_its_fill() {
        let mut f = InFlight::new(Duration::from_secs(5));
        let t = Instant::now();
        let Some(FetchRole::Lead(lead)) = got(ask(&mut f, 7, t)) else {
            panic!("first miss leads");
        };
        let w1 = ask(&mut f, 7, t);
        let w2 = ask(&mut f, 7, t);
        let mut w1 = w1;
        assert!(
            w1.try_recv().expect("open").is_none(),
            "parked until the head"
        );
        assert_eq!(f.filling(7, lead, FollowInfo::of(FILL, &meta())), 2);
        for w in [w1, w2] {
            assert!(matches!(got(w), Some(FetchRole::Follow(i)) if i.fill == FILL && !i.late));
        }
        // A miss arriving during the fill follows at once, as a late one.
        let (tx, rx) = oneshot::channel();
        assert_eq!(
            f.begin(7, None, None, true, t, tx),
            Some(FollowerJoined(FILL))
        );
        assert!(matches!(got(rx), Some(FetchRole::Follow(i)) if i.late));
        f.fill_ended(7, FILL);
        assert_eq!(f.in_flight(), 0);
        assert!(matches!(got(ask(&mut f, 7, t)), Some(FetchRole::Lead(_))));
    }

    #[test]
    fn an_uncacheable_response_releases_waiters_and_passes_for_a_while() {
        let mut f = InFlight::new(Duration::from_secs(5));
        let t = Instant::now();
        let Some(FetchRole::Lead(lead)) = got(ask(&mut f, 7, t)) else {
            panic!("leads");
        };
        let w = ask(&mut f, 7, t);
        f.release(7, lead, Release::Uncacheable, t);
        assert!(matches!(got(w), Some(FetchRole::Alone)));
        assert!(matches!(
            got(ask(&mut f, 7, t + Duration::from_secs(4))),
            Some(FetchRole::Alone)
        ));
        assert!(matches!(
            got(ask(&mut f, 7, t + Duration::from_secs(5))),
            Some(FetchRole::Lead(_))
        ));
    }

    #[test]
    fn a_lead_nobody_received_leaves_the_key_free() {
        let mut f = InFlight::new(Duration::from_secs(5));
        let t = Instant::now();
        let (tx, rx) = oneshot::channel();
        drop(rx);
        f.begin(7, None, None, false, t, tx);
        assert!(
            matches!(got(ask(&mut f, 7, t)), Some(FetchRole::Lead(_))),
            "the next miss leads at once instead of waiting for a lost lead"
        );
    }

    #[test]
    fn a_failed_leader_sends_its_waiters_back_to_ask_again() {
        let mut f = InFlight::new(Duration::from_secs(5));
        let t = Instant::now();
        let Some(FetchRole::Lead(lead)) = got(ask(&mut f, 7, t)) else {
            panic!("leads");
        };
        let w = ask(&mut f, 7, t);
        f.release(7, lead, Release::Failed, t);
        assert!(matches!(got(w), Some(FetchRole::Retry)));
        assert!(
            matches!(got(ask(&mut f, 7, t)), Some(FetchRole::Lead(_))),
            "not pass"
        );
    }

    #[test]
    fn a_lost_lead_is_replaced_and_stale_news_of_it_ignored() {
        let mut f = InFlight::new(Duration::from_secs(5));
        let t = Instant::now();
        let Some(FetchRole::Lead(old)) = got(ask(&mut f, 7, t)) else {
            panic!("leads");
        };
        let w = ask(&mut f, 7, t);
        let later = t + LEAD_TIMEOUT;
        let Some(FetchRole::Lead(new)) = got(ask(&mut f, 7, later)) else {
            panic!("a lost lead is replaced");
        };
        assert!(matches!(got(w), Some(FetchRole::Retry)));
        assert_eq!(f.filling(7, old, FollowInfo::of(FILL, &meta())), 0);
        f.release(7, old, Release::Uncacheable, later);
        let w = ask(&mut f, 7, later);
        f.release(7, new, Release::Failed, later);
        assert!(
            matches!(got(w), Some(FetchRole::Retry)),
            "the new lead still counts"
        );
    }

    #[test]
    fn a_newer_copy_in_the_index_sends_the_miss_back_to_look() {
        let mut f = InFlight::new(Duration::from_secs(5));
        let loc = |slot| Location {
            slot,
            offset: 4096,
            len: 512,
            manifest: false,
        };
        let (tx, rx) = oneshot::channel();
        f.begin(7, Some(loc(2)), Some(loc(1)), true, Instant::now(), tx);
        assert!(matches!(got(rx), Some(FetchRole::Stored)));
        let (tx, rx) = oneshot::channel();
        f.begin(7, Some(loc(1)), Some(loc(1)), true, Instant::now(), tx);
        assert!(
            matches!(got(rx), Some(FetchRole::Lead(_))),
            "the stale copy it saw"
        );
    }

    #[test]
    fn a_miss_that_will_not_wait_is_told_the_key_is_busy() {
        let mut f = InFlight::new(Duration::from_secs(5));
        let t = Instant::now();
        assert!(matches!(got(ask(&mut f, 7, t)), Some(FetchRole::Lead(_))));
        let (tx, rx) = oneshot::channel();
        assert_eq!(f.begin(7, None, None, false, t, tx), None);
        assert!(matches!(got(rx), Some(FetchRole::Busy)));
        let (tx, rx) = oneshot::channel();
        f.begin(8, None, None, false, t, tx);
        assert!(
            matches!(got(rx), Some(FetchRole::Lead(_))),
            "an idle key is led"
        );
    }

    #[test]
    fn a_fill_under_another_key_of_the_url_is_followed_from_both() {
        let mut f = InFlight::new(Duration::from_secs(5));
        let t = Instant::now();
        let Some(FetchRole::Lead(lead)) = got(ask(&mut f, 7, t)) else {
            panic!("leads");
        };
        let waiting = ask(&mut f, 7, t);
        // The leader's response is stored under key 8 (a variant of 7's URL).
        let info = FollowInfo {
            hash: 8,
            ..FollowInfo::of(FILL, &meta())
        };
        assert_eq!(f.filling(7, lead, info.clone()), 1);
        f.adopt(8, info);
        assert!(matches!(got(waiting), Some(FetchRole::Follow(i)) if i.hash == 8));
        assert!(matches!(got(ask(&mut f, 8, t)), Some(FetchRole::Follow(_))));
        f.fill_ended(7, FILL);
        f.fill_ended(8, FILL);
        assert_eq!(f.in_flight(), 0);
    }

    #[test]
    fn hit_for_pass_can_be_turned_off() {
        let mut f = InFlight::new(Duration::ZERO);
        let t = Instant::now();
        let Some(FetchRole::Lead(lead)) = got(ask(&mut f, 7, t)) else {
            panic!("leads");
        };
        f.release(7, lead, Release::Uncacheable, t);
        assert!(matches!(got(ask(&mut f, 7, t)), Some(FetchRole::Lead(_))));
    }
}
