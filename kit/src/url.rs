//! URLs that may carry a password (`amqp://user:password@host`,
//! `postgres://…`): usable where a connection is opened, never printed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A URL whose password is replaced by `***` wherever it is printed
/// (`Debug`, `Display`, logs, error messages); [`SecretUrl::expose`] gives
/// the URL itself, for opening the connection. In settings files it is a
/// plain string.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The URL, password and all: only for opening the connection.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (if any) replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme && url[scheme + 3..at].contains(':') => {
                let user = url[scheme + 3..at].split(':').next().unwrap_or("");
                format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
            }
            _ => url.clone(),
        }
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> SecretUrl {
        SecretUrl(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> SecretUrl {
        SecretUrl(url.to_owned())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::SecretUrl;

    fn shown(url: &str) -> String {
        SecretUrl::from(url).to_string()
    }

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            shown("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(shown("amqp://127.0.0.1"), "amqp://127.0.0.1");
        assert_eq!(
            shown("postgres://postgres@127.0.0.1/warren"),
            "postgres://postgres@127.0.0.1/warren"
        );
        let url = SecretUrl::from("amqp://u:hunter2@h/v");
        assert!(!format!("{url:?} {url}").contains("hunter2"));
        assert_eq!(url.expose(), "amqp://u:hunter2@h/v");
    }
}
