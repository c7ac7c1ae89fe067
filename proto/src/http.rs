//! The JSON error shape of every Warren HTTP API (login, the admin
//! endpoints): `{"error": {"code": "<snake_case>", "message": "<text>"}}`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorJson {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorJson {
    pub fn new(code: &str, message: &str) -> Self {
        ErrorJson {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.to_owned(),
            },
        }
    }
}
