//! VM sizes and vCPU quota for managed online deployments: the VM-size catalogue (family,
//! vCPUs, GPUs), per (subscription, region, VM family) limits, what a deployment reserves
//! (Azure keeps 20 % extra instances for upgrades: ceil(instances x 1.2) x vCPUs), the
//! `OutOfQuota` rejection as Azure words it, and the `locations/{loc}/usages` and
//! `locations/{loc}/vmSizes` renderings.
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::errors::rp_error_body;
use super::routes::Ctx;
use crate::azure::server::{Resp, json_response};
use crate::azure::world::normalize_location;

/// A VM size managed online deployments can use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VmSize {
    pub name: String,
    /// Quota family, e.g. `standardNCADSA100v4Family`.
    pub family: String,
    pub vcpus: u32,
    pub gpus: u32,
    pub memory_gb: f64,
}

impl VmSize {
    fn new(name: &str, family: &str, vcpus: u32, gpus: u32, memory_gb: f64) -> VmSize {
        VmSize {
            name: name.into(),
            family: family.into(),
            vcpus,
            gpus,
            memory_gb,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "name": self.name,
            "family": self.family,
            "vCPUs": self.vcpus,
            "gpus": self.gpus,
            "memoryGB": self.memory_gb,
            "osVhdSizeMB": 1_047_552,
            "maxResourceVolumeMB": self.vcpus * 16_384,
            "lowPriorityCapable": self.gpus == 0,
            "premiumIO": true,
            "supportedComputeTypes": ["ManagedOnlineEndpoint", "AmlCompute", "ComputeInstance"],
        })
    }
}

/// The seeded VM sizes (a general-purpose CPU set and the GPU sizes the catalogue's models use).
pub fn default_vm_sizes() -> Vec<VmSize> {
    vec![
        VmSize::new("Standard_DS3_v2", "standardDSv2Family", 4, 0, 14.0),
        VmSize::new("Standard_F4s_v2", "standardFSv2Family", 4, 0, 8.0),
        VmSize::new("Standard_E4s_v3", "standardESv3Family", 4, 0, 32.0),
        VmSize::new("Standard_NC6s_v3", "standardNCSv3Family", 6, 1, 112.0),
        VmSize::new(
            "Standard_NC24ads_A100_v4",
            "standardNCADSA100v4Family",
            24,
            1,
            220.0,
        ),
        VmSize::new(
            "Standard_NC48ads_A100_v4",
            "standardNCADSA100v4Family",
            48,
            2,
            440.0,
        ),
        VmSize::new(
            "Standard_NC96ads_A100_v4",
            "standardNCADSA100v4Family",
            96,
            4,
            880.0,
        ),
        VmSize::new(
            "Standard_ND96amsr_A100_v4",
            "standardNDAMSv4_A100Family",
            96,
            8,
            1900.0,
        ),
        VmSize::new(
            "Standard_NC40ads_H100_v5",
            "standardNCadsH100v5Family",
            40,
            1,
            320.0,
        ),
    ]
}

/// Seeded limits per family in every region: room for the CPU sizes, 192 vCPUs (eight
/// NC24ads) of NC A100 v4, none of the others until set.
pub fn default_family_limit(family: &str) -> u32 {
    match family {
        "standardDSv2Family" | "standardFSv2Family" | "standardESv3Family" => 100,
        "standardNCADSA100v4Family" => 192,
        _ => 0,
    }
}

/// Instances Azure reserves for `instances` (20 % extra for upgrades, rounded up).
pub fn reserved_instances(instances: u32) -> u32 {
    (instances * 6).div_ceil(5)
}

/// vCPUs a deployment of `instances` x `size` holds against its family's quota.
pub fn reserved_vcpus(size: &VmSize, instances: u32) -> u32 {
    reserved_instances(instances) * size.vcpus
}

/// Azure's rejection when the family's quota cannot hold the deployment (HTTP 400, as
/// reported for `InferencingClientCreateDeploymentFailed`).
pub fn out_of_quota(size: &str, subscription: &str, usage: u32, limit: u32, needed: u32) -> Resp {
    let detail = json!({
        "errors": {"VmSize": [format!(
            "Not enough quota available for {size} in SubscriptionId {subscription}. Current usage/limit: {usage}/{limit}. Additional needed: {needed} Please see troubleshooting guide, available here: https://aka.ms/oe-tsg#error-outofquota"
        )]},
        "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
        "title": "One or more validation errors occurred.",
        "status": 400,
    });
    let message = format!("InferencingClient HttpRequest error, error detail: {detail}");
    let mut body = rp_error_body(
        "BadRequest",
        "InferencingClientCreateDeploymentFailed",
        "The request is invalid.",
    );
    body["error"]["details"] =
        json!([{"code": "InferencingClientCreateDeploymentFailed", "message": message}]);
    json_response(400, body)
}

/// One `Usage` of `locations/{loc}/usages`.
pub fn usage_json(sub: &str, location: &str, family: &str, current: u32, limit: u32) -> Value {
    let localized = family
        .strip_prefix("standard")
        .and_then(|f| f.strip_suffix("Family"))
        .map(|f| format!("Standard {f} Family Cluster Dedicated vCPUs"))
        .unwrap_or_else(|| family.to_string());
    json!({
        "id": format!("/subscriptions/{sub}/providers/Microsoft.MachineLearningServices/vmFamily/{family}/usages"),
        "amlWorkspaceLocation": location,
        "type": "Microsoft.MachineLearningServices/vmFamily/usages",
        "unit": "Count",
        "currentValue": current,
        "limit": limit,
        "name": {"value": family, "localizedValue": localized},
    })
}

/// The regional total `Usage`.
pub fn total_usage_json(sub: &str, location: &str, current: u32, limit: u32) -> Value {
    json!({
        "id": format!("/subscriptions/{sub}/providers/Microsoft.MachineLearningServices/totalCores/usages"),
        "amlWorkspaceLocation": location,
        "type": "Microsoft.MachineLearningServices/totalCores/usages",
        "unit": "Count",
        "currentValue": current,
        "limit": limit,
        "name": {"value": "Total Cluster Dedicated Regional vCPUs", "localizedValue": "Total Cluster Dedicated Regional vCPUs"},
    })
}

/// `GET locations/{loc}/usages`: vCPUs reserved and the limit per VM family, and the total.
pub(crate) fn usages(ctx: &Ctx, sub: &str, location: &str) -> Resp {
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    let loc = normalize_location(location);
    let mut value = Vec::new();
    let (mut total, mut total_limit) = (0, 0);
    for family in w.families(sub, &loc) {
        let current = w.family_usage(sub, &loc, &family, None);
        let limit = w.family_limit(sub, &loc, &family);
        total += current;
        total_limit += limit;
        value.push(usage_json(sub, &loc, &family, current, limit));
    }
    value.insert(0, total_usage_json(sub, &loc, total, total_limit));
    json_response(200, json!({"value": value}))
}

/// `GET locations/{loc}/vmSizes`.
pub(crate) fn vm_sizes(ctx: &Ctx, _location: &str) -> Resp {
    let w = ctx.inner.ml.world.lock();
    let value: Vec<Value> = w.vm_sizes.iter().map(VmSize::json).collect();
    json_response(200, json!({"value": value}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_percent_extra_is_reserved_rounded_up() {
        assert_eq!(reserved_instances(1), 2);
        assert_eq!(reserved_instances(5), 6);
        assert_eq!(reserved_instances(10), 12);
        let nc24 = &default_vm_sizes()[4];
        assert_eq!(reserved_vcpus(nc24, 1), 48);
    }
}
