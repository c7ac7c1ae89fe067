//! The one error every decoder in this crate returns.

/// Bytes that are not what they claim to be. Carries a human-readable cause
/// for the log; never shown to a client verbatim.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid MessagePack for {what}: {source}")]
    Malformed {
        what: &'static str,
        #[source]
        source: rmp_serde::decode::Error,
    },
    #[error("a batch of bus messages is malformed: {0}")]
    Batch(String),
    #[error("{what} has unsupported version {found} (this build speaks {supported})")]
    Version {
        what: &'static str,
        found: u16,
        supported: u16,
    },
}
