//! Revoked tokens: per player, a "not before" time; a token issued before
//! it (its `iat_ms`, else `iat`) no longer logs in. Logout and bans send one to every
//! connector through the bus ([`PushKind::Revoke`]), so a connector keeps
//! verifying tokens on its own, with no call per login.
//!
//! Bounded: an entry is kept as long as a token issued before it can live
//! (the access tokens' lifetime plus the leeway), and at most
//! [`Revoked::MAX`] entries are held. When full even after the expired
//! ones are dropped, the older half folds into one floor for everybody:
//! any token issued before the newest of them is refused. Players with
//! such a token sign in again with their refresh token; no revoked token
//! ever gets back in.
//!
//! [`PushKind::Revoke`]: warren_proto::PushKind::Revoke

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use warren_proto::Uid;

#[derive(Debug)]
pub(crate) struct Revoked {
    keep: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// uid → (not before, unix ms; kept until).
    by_uid: HashMap<Uid, (u64, Instant)>,
    /// Every token issued before this (unix ms) is refused.
    floor: u64,
}

impl Revoked {
    pub(crate) const MAX: usize = 100_000;

    /// Entries kept for `keep`: the longest a token issued before one
    /// stays valid.
    pub(crate) fn new(keep: Duration) -> Self {
        Revoked {
            keep,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses `uid`'s tokens issued before `not_before_ms` (unix ms).
    pub(crate) fn revoke(&self, uid: Uid, not_before_ms: u64, now: Instant) {
        let mut inner = self.lock();
        if inner.by_uid.len() >= Self::MAX && !inner.by_uid.contains_key(&uid) {
            inner.by_uid.retain(|_, (_, until)| *until > now);
            if inner.by_uid.len() >= Self::MAX {
                fold_older_half(&mut inner);
            }
        }
        let entry = inner.by_uid.entry(uid).or_insert((0, now));
        entry.0 = entry.0.max(not_before_ms);
        entry.1 = now + self.keep;
    }

    /// Whether a token of `uid` issued at `issued_ms` is revoked.
    pub(crate) fn refuses(&self, uid: Uid, issued_ms: u64, now: Instant) -> bool {
        let mut inner = self.lock();
        if issued_ms < inner.floor {
            return true;
        }
        match inner.by_uid.get(&uid) {
            Some(&(_, until)) if until <= now => {
                inner.by_uid.remove(&uid);
                false
            }
            Some(&(not_before_ms, _)) => issued_ms < not_before_ms,
            None => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_uid.len()
    }
}

fn fold_older_half(inner: &mut Inner) {
    let mut times: Vec<u64> = inner.by_uid.values().map(|(t, _)| *t).collect();
    let mid = times.len() / 2;
    let (_, cut, _) = times.select_nth_unstable(mid);
    let cut = *cut;
    inner.floor = inner.floor.max(cut);
    inner.by_uid.retain(|_, (t, _)| *t > cut);
    tracing::warn!(
        floor = cut,
        "the revocation list is full: every token issued before the floor is refused \
         (players sign in again with their refresh token)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_players_older_tokens_are_refused_newer_ones_and_others_not() {
        let r = Revoked::new(Duration::from_secs(900));
        let now = Instant::now();
        r.revoke(Uid(7), 1_000, now);
        assert!(r.refuses(Uid(7), 999, now));
        assert!(!r.refuses(Uid(7), 1_000, now), "signed in again after");
        assert!(!r.refuses(Uid(8), 999, now));
        // A later revocation moves it on; an earlier one never back.
        r.revoke(Uid(7), 2_000, now);
        r.revoke(Uid(7), 1_500, now);
        assert!(r.refuses(Uid(7), 1_999, now));
        // Forgotten once every token it could refuse has expired.
        assert!(!r.refuses(Uid(7), 1_999, now + Duration::from_secs(901)));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn full_it_folds_the_older_half_into_a_floor_and_refuses_no_less() {
        let r = Revoked::new(Duration::from_secs(900));
        let now = Instant::now();
        let max = u64::try_from(Revoked::MAX).unwrap();
        for uid in 0..max {
            r.revoke(Uid(uid + 1), 10_000 + uid, now);
        }
        r.revoke(Uid(max + 1), 20_000_000, now);
        assert!(r.len() <= Revoked::MAX / 2 + 2, "{}", r.len());
        // Everyone revoked is still refused: folded ones by the floor.
        // (Uid(u) was revoked from 10_000 + u - 1.)
        for uid in [1, max / 4, max / 2, max] {
            assert!(r.refuses(Uid(uid), 10_000 + uid - 2, now), "uid {uid}");
        }
        // An entry above the floor still refuses exactly what it did.
        assert!(!r.refuses(Uid(max), 10_000 + max - 1, now));
        assert!(r.refuses(Uid(max + 1), 19_999_999, now));
        // A token newer than the floor of a player never revoked passes.
        assert!(!r.refuses(Uid(max + 5), 10_000 + max, now));
    }
}
