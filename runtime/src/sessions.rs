//! Where each online player is connected. Written only by the sessions
//! keeper's thread (in bus order); read by the outbox, to send a push for a
//! uid only to the connector that holds it, and by any service through its
//! context.

use std::{collections::HashMap, sync::RwLock};

use warren_proto::{ConnId, ConnectorId, Uid};

#[derive(Debug, Default)]
pub struct Sessions {
    map: RwLock<HashMap<Uid, (ConnectorId, ConnId)>>,
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
        map.insert(uid, (connector.clone(), conn))
            .filter(|old| *old != (connector, conn))
    }

    /// Forgets `uid` only if this socket is still the one it is known by: a
    /// late Close of an older socket must not hide a newer login. Returns
    /// whether it did.
    pub fn disconnected(&self, uid: Uid, connector: &ConnectorId, conn: ConnId) -> bool {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&uid)
            .is_some_and(|(c, n)| c == connector && *n == conn)
        {
            map.remove(&uid);
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
            .get(&uid)
            .is_some_and(|(c, n)| c == connector && *n == conn)
    }

    /// Forgets every player of a connector (it died or restarted).
    pub fn forget_connector(&self, connector: &ConnectorId) -> Vec<Uid> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<Uid> = map
            .iter()
            .filter(|(_, (c, _))| c == connector)
            .map(|(uid, _)| *uid)
            .collect();
        for uid in &gone {
            map.remove(uid);
        }
        gone
    }

    pub fn connector_of(&self, uid: Uid) -> Option<ConnectorId> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&uid)
            .map(|(c, _)| c.clone())
    }

    pub fn online(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
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
