//! Request log: every request the emulator answered (method, path, status, principal,
//! account, write or not, timing), so tests and benchmarks can count calls. Never holds
//! bodies, keys or tokens.
use std::time::Instant;

use super::{Inner, Surface};

#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub surface: Surface,
    pub method: String,
    pub path: String,
    pub query: String,
    /// 0 when the connection was dropped by an injected fault.
    pub status: u16,
    /// Client id (app id) of the caller's token, if any.
    pub principal: Option<String>,
    /// ARM id of the account concerned (ARM and data plane).
    pub account_id: Option<String>,
    /// PUT/PATCH/DELETE/POST-action on ARM, or a Key Vault set/delete.
    pub is_write: bool,
    pub started: Instant,
    pub finished: Instant,
}

impl Inner {
    pub(crate) fn record(&self, mut rec: RequestRecord) {
        // Query strings never carry secrets here, but strip anything that looks like one.
        if rec.query.to_ascii_lowercase().contains("key=") {
            rec.query = "<redacted>".into();
        }
        tracing::debug!(
            surface = ?rec.surface, method = %rec.method, path = %rec.path, status = rec.status,
            "azure emulator request"
        );
        self.log.lock().push(rec);
    }
}
