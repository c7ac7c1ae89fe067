//! Identity newtypes: who a player is, which connector holds a socket, and
//! which socket on that connector.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A player's account id, the `sub` of their token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Uid(pub u64);

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for Uid {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Uid)
    }
}

/// One socket on one connector; unique for the connector's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The name of a connector process; its push queue is named after it.
/// Restricted to `[A-Za-z0-9_.-]{1,64}` so it is safe in queue names and
/// routing keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectorId(String);

impl ConnectorId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        if ok {
            Ok(ConnectorId(s.to_owned()))
        } else {
            Err(format!(
                "connector id {s:?} must be 1 to 64 characters of A-Z a-z 0-9 _ - ."
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_ids_are_queue_safe() {
        assert!(ConnectorId::parse("conn-1.eu_west").is_ok());
        assert!(ConnectorId::parse("").is_err());
        assert!(ConnectorId::parse("a b").is_err());
        assert!(ConnectorId::parse("a#b").is_err());
        assert!(ConnectorId::parse(&"x".repeat(65)).is_err());
    }
}
