//! Caps on live streams held open at once: per link, per client and per
//! node. A stream is endless and re-reads its link's totals from the store
//! after clicks, so without caps one link secret (or one client) could open
//! streams until the node runs out of memory, sockets or store capacity.
//! Rate limits do not help here: they count requests, not what stays open.
//! The caps are per node (each node counts its own streams).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::domain::LinkId;

/// How many live streams may be open at once (0: no cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveCaps {
    pub per_link: usize,
    pub per_client: usize,
    pub per_node: usize,
}

/// Which cap refused a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Link,
    Client,
    Node,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_link: HashMap<LinkId, usize>,
    per_client: HashMap<String, usize>,
}

/// The open live streams, counted.
pub struct LiveSlots {
    caps: LiveCaps,
    open: Mutex<Open>,
}

/// One open stream's place: given back when dropped (the stream ended).
pub struct LiveSlot {
    slots: Arc<LiveSlots>,
    link: LinkId,
    client: String,
}

fn over(cap: usize, n: usize) -> bool {
    cap > 0 && n >= cap
}

impl LiveSlots {
    pub fn new(caps: LiveCaps) -> Arc<LiveSlots> {
        Arc::new(LiveSlots {
            caps,
            open: Mutex::new(Open::default()),
        })
    }

    /// A place for one more stream of `link` for `client` (its limit key),
    /// unless a cap is reached.
    pub fn take(self: &Arc<Self>, link: LinkId, client: &str) -> Result<LiveSlot, Full> {
        let mut open = self.open.lock();
        if over(self.caps.per_node, open.total) {
            return Err(Full::Node);
        }
        if over(
            self.caps.per_link,
            open.per_link.get(&link).copied().unwrap_or(0),
        ) {
            return Err(Full::Link);
        }
        if over(
            self.caps.per_client,
            open.per_client.get(client).copied().unwrap_or(0),
        ) {
            return Err(Full::Client);
        }
        open.total += 1;
        *open.per_link.entry(link).or_default() += 1;
        *open.per_client.entry(client.to_owned()).or_default() += 1;
        Ok(LiveSlot {
            slots: self.clone(),
            link,
            client: client.to_owned(),
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.lock().total
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock();
        open.total -= 1;
        // Counts that reach zero are removed, so the maps hold only what
        // is open.
        if let Some(n) = open.per_link.get_mut(&self.link) {
            *n -= 1;
            if *n == 0 {
                open.per_link.remove(&self.link);
            }
        }
        if let Some(n) = open.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_link_client_and_node_and_places_come_back() {
        let slots = LiveSlots::new(LiveCaps {
            per_link: 2,
            per_client: 3,
            per_node: 5,
        });
        let (a, b, c) = (LinkId(1), LinkId(2), LinkId(3));
        let a1 = slots.take(a, "x").unwrap();
        let _a2 = slots.take(a, "y").unwrap();
        assert_eq!(slots.take(a, "z").err(), Some(Full::Link));
        let _b1 = slots.take(b, "x").unwrap();
        let _c1 = slots.take(c, "x").unwrap();
        assert_eq!(slots.take(b, "x").err(), Some(Full::Client));
        let _b2 = slots.take(b, "z").unwrap();
        assert_eq!(slots.open(), 5);
        assert_eq!(slots.take(c, "w").err(), Some(Full::Node));
        drop(a1);
        assert_eq!(slots.open(), 4);
        let _a3 = slots.take(a, "w").unwrap();
        assert!(!slots.open.lock().per_client.contains_key("q"));
        let open = LiveSlots::new(LiveCaps {
            per_link: 0,
            per_client: 0,
            per_node: 0,
        });
        let held: Vec<_> = (0..100).map(|_| open.take(a, "x").unwrap()).collect();
        assert_eq!(open.open(), 100);
        drop(held);
        let o = open.open.lock();
        assert_eq!(o.total, 0);
        assert!(o.per_link.is_empty() && o.per_client.is_empty());
    }
}
