//! Where each online player is connected, learned from Connect and Close
//! events, so a push to a uid goes only to the connector that holds it.

use std::{collections::HashMap, sync::RwLock};

use warren_proto::{ConnId, ConnectorId, Uid};

#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: RwLock<HashMap<Uid, (ConnectorId, ConnId)>>,
}

impl Sessions {
    pub(crate) fn connected(&self, uid: Uid, connector: ConnectorId, conn: ConnId) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid, (connector, conn));
    }

    /// Forgets `uid` only if this socket is still the one it is known by: a
    /// late Close of an older socket must not hide a newer login.
    pub(crate) fn disconnected(&self, uid: Uid, connector: &ConnectorId, conn: ConnId) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&uid)
            .is_some_and(|(c, n)| c == connector && *n == conn)
        {
            map.remove(&uid);
        }
    }

    pub(crate) fn connector_of(&self, uid: Uid) -> Option<ConnectorId> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&uid)
            .map(|(c, _)| c.clone())
    }

    pub(crate) fn online(&self) -> usize {
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
        s.connected(Uid(1), a.clone(), ConnId(1));
        s.connected(Uid(1), b.clone(), ConnId(9));
        s.disconnected(Uid(1), &a, ConnId(1));
        assert_eq!(s.connector_of(Uid(1)), Some(b.clone()));
        s.disconnected(Uid(1), &b, ConnId(9));
        assert_eq!(s.connector_of(Uid(1)), None);
        assert_eq!(s.online(), 0);
    }
}
