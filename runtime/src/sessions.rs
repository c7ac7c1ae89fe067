//! Where each online player is connected. Written only by the sessions
//! keeper's thread (in bus order); read by the outbox, to send a push for a
//! uid only to the connector that holds it, and by any service through its
//! context.

use std::{collections::HashMap, sync::RwLock};

use warren_proto::{ConnId, ConnectorId, Uid};

type Socket = (ConnectorId, ConnId);

#[derive(Debug, Default)]
pub struct Sessions {
    map: RwLock<Map>,
}

#[derive(Debug, Default)]
struct Map {
    by_uid: HashMap<Uid, Socket>,
    /// Sessions that moved to another connector (a resume there): replies
    /// addressed to the old connection go to the new one. An entry lives
    /// as long as the session it points to.
    moved: HashMap<Socket, Socket>,
}

impl Map {
    /// Forgets the moves that point to `to` (its session is over).
    fn forget_moves_to(&mut self, to: &Socket) {
        if !self.moved.is_empty() {
            self.moved.retain(|_, now| now != to);
        }
    }
}

impl Sessions {
    /// Records a login; returns the socket it displaced, if any.
    pub fn connected(
        &self,
        uid: Uid,
        connector: ConnectorId,
        conn: ConnId,
    ) -> Option<(ConnectorId, ConnId)> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let old = map.by_uid.insert(uid, (connector.clone(), conn))?;
        if old == (connector, conn) {
            return None;
        }
        map.forget_moves_to(&old);
        Some(old)
    }

    /// The session of `uid` held by connection `from` moves to `to` (its
    /// client resumed there); false (and nothing changed) if `from` does
    /// not hold it.
    pub fn moved(&self, uid: Uid, from: Socket, to: Socket) -> bool {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.by_uid.get(&uid) != Some(&from) {
            return false;
        }
        map.by_uid.insert(uid, to.clone());
        for now in map.moved.values_mut() {
            if *now == from {
                *now = to.clone();
            }
        }
        map.moved.insert(from, to);
        true
    }

    /// Where a reply addressed to connection `conn` of `connector` goes:
    /// there, or where its session moved.
    pub fn reply_to(&self, connector: &ConnectorId, conn: ConnId) -> Option<Socket> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        if map.moved.is_empty() {
            return None;
        }
        map.moved.get(&(connector.clone(), conn)).cloned()
    }

    /// Forgets `uid` only if this socket is still the one it is known by: a
    /// late Close of an older socket must not hide a newer login. Returns
    /// whether it did.
    pub fn disconnected(&self, uid: Uid, connector: &ConnectorId, conn: ConnId) -> bool {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map
            .by_uid
            .get(&uid)
            .is_some_and(|(c, n)| c == connector && *n == conn)
        {
            map.by_uid.remove(&uid);
            map.forget_moves_to(&(connector.clone(), conn));
            true
        } else {
            false
        }
    }

    /// Whether `uid` is known by this socket.
    pub fn holds(&self, uid: Uid, connector: &ConnectorId, conn: ConnId) -> bool {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_uid
            .get(&uid)
            .is_some_and(|(c, n)| c == connector && *n == conn)
    }

    /// Forgets every player of a connector (it died or restarted).
    pub fn forget_connector(&self, connector: &ConnectorId) -> Vec<Uid> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<Uid> = map
            .by_uid
            .iter()
            .filter(|(_, (c, _))| c == connector)
            .map(|(uid, _)| *uid)
            .collect();
        for uid in &gone {
            map.by_uid.remove(uid);
        }
        map.moved.retain(|_, (c, _)| c != connector);
        gone
    }

    pub fn connector_of(&self, uid: Uid) -> Option<ConnectorId> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_uid
            .get(&uid)
            .map(|(c, _)| c.clone())
    }

    pub fn online(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_uid
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_close_of_an_old_socket_keeps_the_new_one() {
        let s = Sessions::default();
        let a = ConnectorId::parse("a").expect("id");
        let b = ConnectorId::parse("b").expect("id");
        assert_eq!(s.connected(Uid(1), a.clone(), ConnId(1)), None);
        assert_eq!(
            s.connected(Uid(1), b.clone(), ConnId(9)),
            Some((a.clone(), ConnId(1)))
        );
        assert!(!s.disconnected(Uid(1), &a, ConnId(1)));
        assert_eq!(s.connector_of(Uid(1)), Some(b.clone()));
        assert!(s.disconnected(Uid(1), &b, ConnId(9)));
        assert_eq!(s.connector_of(Uid(1)), None);
        assert_eq!(s.online(), 0);
    }

    #[test]
    fn a_moved_session_takes_the_replies_to_its_old_connection_along() {
        let s = Sessions::default();
        let a = ConnectorId::parse("a").expect("id");
        let b = ConnectorId::parse("b").expect("id");
        let c = ConnectorId::parse("c").expect("id");
        assert_eq!(s.reply_to(&a, ConnId(1)), None);
        s.connected(Uid(1), a.clone(), ConnId(1));
        assert!(!s.moved(Uid(1), (b.clone(), ConnId(5)), (c.clone(), ConnId(6))));
        assert!(s.moved(Uid(1), (a.clone(), ConnId(1)), (b.clone(), ConnId(2))));
        assert_eq!(s.connector_of(Uid(1)), Some(b.clone()));
        assert_eq!(s.reply_to(&a, ConnId(1)), Some((b.clone(), ConnId(2))));
        // Moved again: the first connection's replies follow.
        assert!(s.moved(Uid(1), (b.clone(), ConnId(2)), (c.clone(), ConnId(3))));
        assert_eq!(s.reply_to(&a, ConnId(1)), Some((c.clone(), ConnId(3))));
        assert_eq!(s.reply_to(&b, ConnId(2)), Some((c.clone(), ConnId(3))));
        // Over: nothing is rerouted any more.
        assert!(s.disconnected(Uid(1), &c, ConnId(3)));
        assert_eq!(s.reply_to(&a, ConnId(1)), None);
    }

    #[test]
    fn a_dead_connector_takes_its_players_along() {
        let s = Sessions::default();
        let a = ConnectorId::parse("a").expect("id");
        let b = ConnectorId::parse("b").expect("id");
        s.connected(Uid(1), a.clone(), ConnId(1));
        s.connected(Uid(2), b.clone(), ConnId(1));
        s.connected(Uid(3), a.clone(), ConnId(2));
        let mut gone = s.forget_connector(&a);
        gone.sort();
        assert_eq!(gone, vec![Uid(1), Uid(3)]);
        assert_eq!(s.online(), 1);
    }
}
