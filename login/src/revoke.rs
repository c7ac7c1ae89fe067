//! Telling the connectors about a logout: login asks a game's admin
//! endpoint (`POST /v1/revoke`), which sends the revocation to every
//! connector through the bus; they refuse the player's older access
//! tokens and kick the socket of that sign-in (`logged_out`).

use std::time::Duration;

use serde_json::json;
use tracing::warn;
use warren_kit::tls::{TlsSettings, client_agent};

/// A game's admin endpoint and its bearer token.
#[derive(Clone)]
pub struct Revoker {
    url: String,
    token: String,
    tls: TlsSettings,
}

impl std::fmt::Debug for Revoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revoker")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Revoker {
    /// The longest a logout waits for the game's admin endpoint.
    pub const TIMEOUT: Duration = Duration::from_secs(3);

    /// The admin endpoint at `url` (`http://` or `https://host:port`),
    /// with `token`; over HTTPS it trusts what `tls` says (`tls.ca`, else
    /// `tls.cert`, read again for each call, so a renewed certificate is
    /// trusted without a restart).
    pub fn new(url: &str, token: String, tls: TlsSettings) -> Revoker {
        Revoker {
            url: format!("{}/v1/revoke", url.trim_end_matches('/')),
            token,
            tls,
        }
    }

    /// Revokes `uid`'s access tokens issued before now, kicking the socket
    /// of sign-in `sid` (every sign-in when None) with `reason`; whether
    /// the game took it (a failure is logged: the sign-ins are ended all
    /// the same, and the tokens expire on their own).
    pub(crate) async fn revoke(&self, uid: u64, sid: Option<String>, reason: &str) -> bool {
        // This host's clock, which also stamped the tokens it revokes.
        let now = warren_proto::time::unix_ms();
        let body = json!({"uid": uid, "sid": sid, "reason": reason, "not_before_ms": now});
        let this = self.clone();
        let sent = tokio::task::spawn_blocking(move || {
            client_agent(&this.tls, Self::TIMEOUT)
                .map_err(|e| e.to_string())?
                .post(&this.url)
                .header("Authorization", &format!("Bearer {}", this.token))
                .send_json(&body)
                .map_err(|e| e.to_string())
                .and_then(|resp| match resp.status().as_u16() {
                    200 => Ok(()),
                    status => Err(format!("answered {status}")),
                })
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match sent {
            Ok(()) => true,
            Err(e) => {
                warn!(uid, url = %self.url, error = %e, "logout: the game's admin endpoint did not take the revocation; live sockets stay until they close");
                false
            }
        }
    }
}
