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
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use warren_proto::{Uid, cmd::kick};

#[derive(Debug)]
pub(crate) struct Revoked {
    keep: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_uid: HashMap<Uid, Entry>,
    /// Every token issued before this (unix ms) is refused.
    floor: u64,
}

#[derive(Debug)]
struct Entry {
    /// Tokens issued before this (unix ms) are refused.
    not_before: u64,
    /// Kept until then.
    until: Instant,
    /// Why (the kick reason of the revocation that set `not_before`).
    reason: Arc<str>,
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

    /// Refuses `uid`'s tokens issued before `not_before_ms` (unix ms),
    /// for `reason` (a kick reason: `logged_out`, `banned`).
    pub(crate) fn revoke(&self, uid: Uid, not_before_ms: u64, reason: &str, now: Instant) {
        let mut inner = self.lock();
        if inner.by_uid.len() >= Self::MAX && !inner.by_uid.contains_key(&uid) {
            inner.by_uid.retain(|_, e| e.until > now);
            if inner.by_uid.len() >= Self::MAX {
                fold_older_half(&mut inner);
            }
        }
        let entry = inner.by_uid.entry(uid).or_insert_with(|| Entry {
            not_before: 0,
            until: now,
            reason: reason.into(),
        });
        if not_before_ms >= entry.not_before {
            entry.not_before = not_before_ms;
            entry.reason = reason.into();
        }
        entry.until = now + self.keep;
    }

    /// Whether a token of `uid` issued at `issued_ms` is revoked.
    pub(crate) fn refuses(&self, uid: Uid, issued_ms: u64, now: Instant) -> bool {
        self.refusal(uid, issued_ms, now).is_some()
    }

    /// Why a token of `uid` issued at `issued_ms` is revoked, if it is
    /// (`logged_out` when only the floor refuses it).
    pub(crate) fn refusal(&self, uid: Uid, issued_ms: u64, now: Instant) -> Option<Arc<str>> {
        let mut inner = self.lock();
        let entry = match inner.by_uid.get(&uid) {
            Some(e) if e.until <= now => {
                inner.by_uid.remove(&uid);
                None
            }
            entry => entry,
        };
        match entry {
            Some(e) if issued_ms < e.not_before => Some(e.reason.clone()),
            _ if issued_ms < inner.floor => Some(kick::LOGGED_OUT.into()),
            _ => None,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_uid.len()
    }
}

fn fold_older_half(inner: &mut Inner) {
    let mut times: Vec<u64> = inner.by_uid.values().map(|e| e.not_before).collect();
    let mid = times.len() / 2;
    let (_, cut, _) = times.select_nth_unstable(mid);
    let cut = *cut;
    inner.floor = inner.floor.max(cut);
    inner.by_uid.retain(|_, e| e.not_before > cut);
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
        r.revoke(Uid(7), 1_000, "logged_out", now);
        assert!(r.refuses(Uid(7), 999, now));
        assert!(!r.refuses(Uid(7), 1_000, now), "signed in again after");
        assert!(!r.refuses(Uid(8), 999, now));
        // A later revocation moves it on; an earlier one never back.
        r.revoke(Uid(7), 2_000, "banned", now);
        r.revoke(Uid(7), 1_500, "logged_out", now);
        assert!(r.refuses(Uid(7), 1_999, now));
        // With the reason of the revocation that set the time.
        assert_eq!(r.refusal(Uid(7), 1_999, now).as_deref(), Some("banned"));
        assert_eq!(r.refusal(Uid(7), 2_000, now), None);
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
            r.revoke(Uid(uid + 1), 10_000 + uid, "logged_out", now);
        }
        r.revoke(Uid(max + 1), 20_000_000, "logged_out", now);
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
