//! Tokens verified recently. A call carries its token every time, and the
//! Ed25519 signature check was half of a call's CPU (BENCHMARKS.md), so a
//! token is checked once and remembered until it expires: the next call
//! with exactly the same token (the whole string, signature included) skips
//! the check. Bounded: at most `capacity` tokens; a full cache first drops
//! the expired ones, then, if still full, everything (the next calls check
//! their tokens again). A revocation of a player forgets its tokens.

use std::{collections::HashMap, sync::Mutex};

use warren_proto::Uid;

#[derive(Debug)]
pub(crate) struct VerifiedTokens {
    /// Token => (its uid, valid until: unix seconds, exclusive).
    map: Mutex<HashMap<Box<str>, (Uid, u64)>>,
    capacity: usize,
}

impl VerifiedTokens {
    pub(crate) fn new(capacity: usize) -> Self {
        VerifiedTokens {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The uid of `token` if it was verified and is still valid at `now`.
    pub(crate) fn get(&self, token: &str, now: u64) -> Option<Uid> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(token) {
            Some(&(uid, until)) if now < until => Some(uid),
            _ => None,
        }
    }

    /// Remembers that `token` verified as `uid`, valid until `until`.
    pub(crate) fn insert(&self, token: &str, uid: Uid, until: u64, now: u64) {
        if self.capacity == 0 || now >= until {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(token) {
            map.retain(|_, &mut (_, until)| now < until);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(token.into(), (uid, until));
    }

    /// Forgets every token of `uid` (revoked: logout, ban), so its next
    /// call is checked again.
    pub(crate) fn forget(&self, uid: Uid) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, &mut (u, _)| u != uid);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_remembered_until_it_expires() {
        let cache = VerifiedTokens::new(10);
        cache.insert("a.b.c", Uid(7), 100, 50);
        assert_eq!(cache.get("a.b.c", 99), Some(Uid(7)));
        assert_eq!(cache.get("a.b.c", 100), None, "expired");
        assert_eq!(cache.get("a.b.x", 60), None, "only the very same token");
        cache.insert("old", Uid(8), 40, 50);
        assert_eq!(cache.get("old", 30), None, "never stored once expired");
    }

    #[test]
    fn a_full_cache_drops_the_expired_then_everything() {
        let cache = VerifiedTokens::new(3);
        cache.insert("t1", Uid(1), 10, 0);
        cache.insert("t2", Uid(2), 100, 0);
        cache.insert("t3", Uid(3), 100, 0);
        // Full; at 20, t1 has expired and makes room.
        cache.insert("t4", Uid(4), 100, 20);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("t2", 20), Some(Uid(2)));
        assert_eq!(cache.get("t4", 20), Some(Uid(4)));
        // Full of valid tokens: emptied, then the new one kept.
        cache.insert("t5", Uid(5), 100, 20);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get("t5", 20), Some(Uid(5)));
        let off = VerifiedTokens::new(0);
        off.insert("t", Uid(1), 100, 0);
        assert_eq!(off.get("t", 1), None, "capacity 0: nothing remembered");
    }
}
