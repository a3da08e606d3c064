//! Marketplace subscriptions (`workspaces/{w}/marketplaceSubscriptions`): PUT/GET/list/DELETE
//! as long-running operations; `properties.modelId` must name a catalogue model sold through
//! the marketplace, and the subscription carries that model's marketplace plan. A serverless
//! endpoint of such a model needs one (see `serverless`).
use serde_json::json;

use super::errors::user_error;
use super::operations::{self, Poll};
use super::registry::{self, parse_model_ref};
use super::resource::{self, system_data};
use super::routes::{Ctx, child_key};
use super::state::{MarketplaceSubscription, Scope, Target};
use crate::azure::server::{Resp, empty_response, json_response};

pub(crate) const TYPE: &str =
    "Microsoft.MachineLearningServices/workspaces/marketplaceSubscriptions";

pub(crate) fn put(ctx: &Ctx, scope: &Scope, name: &str) -> Resp {
    let request = match resource::body(ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(model_id) = request["properties"]["modelId"]
        .as_str()
        .filter(|m| !m.is_empty())
    else {
        return user_error(
            "BadArgument",
            "properties.modelId is required: the id of the model to subscribe to, e.g. azureml://registries/azureml-mistral/models/Mistral-Large-2411.",
        );
    };
    let key = child_key(scope, "marketplaceSubscriptions", name);
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    let Some(model) = parse_model_ref(model_id)
        .and_then(|r| registry::resolve(&w.catalog, &r))
        .cloned()
    else {
        return user_error(
            "NotFound",
            &format!(
                "Model '{model_id}' was not found in the registry catalogue, so it has no marketplace offer to subscribe to."
            ),
        );
    };
    let Some(offer) = &model.marketplace else {
        return user_error(
            "BadArgument",
            &format!(
                "Model '{}' is not sold through the Azure Marketplace: its serverless endpoints need no marketplace subscription.",
                model.model_id()
            ),
        );
    };
    let existing = w.subscriptions.get(&key).map(|s| s.body.clone());
    if let Some(old) = &existing
        && old["properties"]["modelId"]
            .as_str()
            .is_some_and(|m| !m.eq_ignore_ascii_case(model_id))
    {
        return user_error(
            "BadArgument",
            &format!(
                "The modelId of marketplace subscription '{name}' cannot be changed: it subscribes to {}.",
                old["properties"]["modelId"]
            ),
        );
    }
    let body = json!({
        "id": format!("{}/marketplaceSubscriptions/{name}", scope.workspace_id()),
        "name": name,
        "type": TYPE,
        "properties": {
            "modelId": model_id,
            "marketplacePlan": {"publisherId": offer.publisher_id, "offerId": offer.offer_id, "planId": offer.plan_id},
            "marketplaceSubscriptionStatus": "Subscribed",
            "provisioningState": if existing.is_some() { "Updating" } else { "Creating" },
        },
        "systemData": system_data(existing.as_ref(), &ctx.principal),
    });
    w.subscriptions.insert(
        key.clone(),
        MarketplaceSubscription {
            scope: scope.clone(),
            body: body.clone(),
        },
    );
    let status = if existing.is_some() { 200 } else { 201 };
    operations::begin(
        ctx,
        &mut w,
        &scope.subscription,
        &scope.location,
        Target::Marketplace { key, delete: false },
        Poll::AsyncOperation,
        json_response(status, body),
    )
}

pub(crate) fn delete(ctx: &Ctx, scope: &Scope, name: &str) -> Resp {
    let key = child_key(scope, "marketplaceSubscriptions", name);
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    let Some(s) = w.subscriptions.get_mut(&key) else {
        return empty_response(204);
    };
    s.body["properties"]["provisioningState"] = json!("Deleting");
    operations::begin(
        ctx,
        &mut w,
        &scope.subscription,
        &scope.location,
        Target::Marketplace { key, delete: true },
        Poll::Location,
        empty_response(202),
    )
}
