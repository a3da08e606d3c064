//! Error bodies of the Machine Learning resource provider: ARM's `ErrorResponse` with the RP's
//! shape (`code` "UserError" and the specific code in `additionalInfo` `InnerError`, as the
//! management front end answers), ARM's own 404 for missing resources, and 409 while an
//! endpoint is busy.
use serde_json::{Value, json};

use crate::azure::server::{Resp, json_response};

/// The RP's error: `{"error": {"code", "message", "details": [], "additionalInfo": [...]}}`.
pub(crate) fn rp_error(status: u16, code: &str, inner_code: &str, message: &str) -> Resp {
    json_response(status, rp_error_body(code, inner_code, message))
}

pub(crate) fn rp_error_body(code: &str, inner_code: &str, message: &str) -> Value {
    json!({"error": {
        "code": code,
        "message": message,
        "details": [],
        "additionalInfo": [
            {"type": "ComponentName", "info": {"value": "managementfrontend"}},
            {"type": "InnerError", "info": {"code": inner_code, "innerError": null}},
        ],
    }})
}

/// 400 UserError with an inner code such as `BadArgument`.
pub(crate) fn user_error(inner_code: &str, message: &str) -> Resp {
    rp_error(400, "UserError", inner_code, message)
}

/// ARM's plain error body (authentication, api-version, request content).
pub(crate) use crate::azure::arm::arm_error;

/// ARM's 404 for a resource of `type_path` (e.g. `workspaces/w/onlineEndpoints/e`).
pub(crate) fn not_found(rg: &str, type_path: &str) -> Resp {
    arm_error(
        404,
        "ResourceNotFound",
        &format!(
            "The Resource 'Microsoft.MachineLearningServices/{type_path}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

/// 409 while another operation runs on the endpoint (or on one of its deployments).
pub(crate) fn busy(endpoint: &str, running: &str) -> Resp {
    rp_error(
        409,
        "UserError",
        "Conflict",
        &format!(
            "Conflict: the online endpoint '{endpoint}' has an operation in progress ({running}). Only one operation at a time can run on an endpoint and its deployments; wait for it to finish, then retry."
        ),
    )
}

pub(crate) fn invalid_content(e: &str) -> Resp {
    arm_error(
        400,
        "InvalidRequestContent",
        &format!("The request content was invalid and could not be deserialized: '{e}'."),
    )
}
