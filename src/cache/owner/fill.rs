//! The writing end of a fill as a shard sees it: the body's pieces go to
//! the key's owner (directly, or as messages in order), and the end of the
//! fill is acknowledged once the owner has indexed (or dropped) it.

use super::{OwnerMsg, OwnerRouter};
use crate::cache::store::FillId;
use futures_channel::oneshot;

/// The writing end of one fill. Dropping it without `finish(true)` abandons
/// the fill: nothing of it is ever indexed.
pub struct FillHandle<'a> {
    pub(super) router: &'a OwnerRouter,
    pub(super) owner: u32,
    pub(super) id: FillId,
    pub(super) ended: bool,
}

impl FillHandle<'_> {
    pub async fn data(&self, data: &[u8]) {
        if self.owner == self.router.shard {
            self.router.store.fill_data(self.id, data).await;
        } else {
            let msg = OwnerMsg::FillData {
                id: self.id,
                data: data.to_vec(),
            };
            self.router.send(self.owner, msg).await;
        }
    }

    /// Ends the fill. Returns once the owner has indexed the object (or
    /// dropped it), so a viewer told the response is complete finds it stored.
    pub async fn finish(mut self, complete: bool) {
        self.ended = true;
        if self.owner == self.router.shard {
            self.router.store.fill_end(self.id, complete).await;
        } else {
            let (tx, rx) = oneshot::channel();
            let msg = OwnerMsg::FillEnd {
                id: self.id,
                complete,
                done: Some(tx),
            };
            if self.router.send(self.owner, msg).await {
                let _ = rx.await;
            }
        }
    }
}

impl Drop for FillHandle<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Cancelled mid-fill (viewer gone, task dropped): tell the owner
        // without waiting, so its staged bytes are released.
        if self.owner == self.router.shard {
            let store = self.router.store.clone();
            let id = self.id;
            crate::runtime::task::spawn_detached(async move { store.fill_end(id, false).await });
        } else if let Some(m) = &self.router.mesh {
            let _ = m.try_send_to(
                self.owner,
                OwnerMsg::FillEnd {
                    id: self.id,
                    complete: false,
                    done: None,
                },
            );
        }
    }
}
