//! Fault injection: for the next N requests matching (surface, method, path substring),
//! answer an Azure error (status, code, message, optional Retry-After), delay, or drop the
//! connection.
use std::time::Duration;

use super::Inner;
use super::server::Req;

/// Which emulated surface a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Surface {
    /// Matches every surface (in faults); the admin routes in the log.
    Any,
    Token,
    ManagedIdentity,
    Arm,
    KeyVault,
    DataPlane,
}

#[derive(Clone, Debug)]
pub enum FaultAction {
    /// Answer with this status and an Azure error body (`{"error":{"code","message"}}`;
    /// OAuth's `{"error","error_description"}` on the token surfaces).
    Error {
        status: u16,
        code: String,
        message: String,
        retry_after: Option<u64>,
    },
    /// Sleep, then handle the request normally.
    Delay(Duration),
    /// Close the connection without an answer.
    Drop,
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub surface: Surface,
    pub method: Option<http::Method>,
    pub path_contains: Option<String>,
    pub count: usize,
    pub action: FaultAction,
}

impl Fault {
    /// Convenience: `count` ARM errors with Azure's body for any request on `surface`.
    pub fn error(surface: Surface, count: usize, status: u16, code: &str, message: &str) -> Fault {
        Fault {
            surface,
            method: None,
            path_contains: None,
            count,
            action: FaultAction::Error {
                status,
                code: code.to_string(),
                message: message.to_string(),
                retry_after: None,
            },
        }
    }

    fn matches(&self, surface: Surface, req: &Req) -> bool {
        (self.surface == Surface::Any || self.surface == surface)
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.as_str().eq_ignore_ascii_case(&req.method))
            && self.path_contains.as_ref().is_none_or(|p| {
                req.path
                    .to_ascii_lowercase()
                    .contains(&p.to_ascii_lowercase())
            })
    }
}

impl Inner {
    /// Consumes one use of the first matching fault.
    pub(crate) fn take_fault(&self, surface: Surface, req: &Req) -> Option<FaultAction> {
        let mut faults = self.faults.lock();
        let idx = faults
            .iter()
            .position(|f| f.count > 0 && f.matches(surface, req))?;
        faults[idx].count -= 1;
        let action = faults[idx].action.clone();
        if faults[idx].count == 0 {
            faults.remove(idx);
        }
        Some(action)
    }
}
