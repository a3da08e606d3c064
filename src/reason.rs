//! The reasons the operator reports, in the Ready condition and in events, as named constants.
//! Terminal Azure errors are reported with Azure's own error code as the reason (the README's
//! conditions table lists the common ones), so those are not all named here.

// ---- Ready condition: progress and success
pub const READY: &str = "Ready";
pub const CREATING: &str = "Creating";
pub const UPDATING: &str = "Updating";
pub const DELETING: &str = "Deleting";
pub const PAUSING: &str = "Pausing";
pub const RESUMING: &str = "Resuming";
/// Azure reports a provisioning state the operator did not start (someone else's operation).
pub const PROVISIONING: &str = "Provisioning";
/// Queued behind another write on the same account.
pub const WAITING_FOR_ACCOUNT: &str = "WaitingForAccount";

// ---- Ready condition: transient Azure failures (retried with backoff)
/// 409: Azure reports another operation in progress on the account.
pub const WAITING_FOR_AZURE: &str = "WaitingForAzure";
pub const AZURE_THROTTLED: &str = "AzureThrottled";
pub const AZURE_UNAVAILABLE: &str = "AzureUnavailable";
pub const AZURE_UNREACHABLE: &str = "AzureUnreachable";

// ---- Ready condition: blocked before any Azure call
pub const ACCOUNT_NOT_FOUND: &str = "AccountNotFound";
pub const ACCOUNT_NOT_READY: &str = "AccountNotReady";
pub const ACCOUNT_DELETING: &str = "AccountDeleting";
pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
pub const CREDENTIAL_ERROR: &str = "CredentialError";
pub const ADOPTION_REFUSED: &str = "AdoptionRefused";
pub const OWNED_BY_ANOTHER_RESOURCE: &str = "OwnedByAnotherResource";

// ---- Ready condition: terminal (needs a human), as Azure names them
pub const INSUFFICIENT_QUOTA: &str = "InsufficientQuota";
pub const DEPLOYMENT_MODEL_NOT_SUPPORTED: &str = "DeploymentModelNotSupported";
pub const INVALID_RESOURCE_PROPERTIES: &str = "InvalidResourceProperties";
/// The capacity breaks the model's rules for the SKU (minimum, maximum, step, allowed values).
pub const INVALID_CAPACITY: &str = "InvalidCapacity";
pub const AUTHORIZATION_FAILED: &str = "AuthorizationFailed";
pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
/// listKeys returned no key (local authentication disabled).
pub const NO_KEYS: &str = "NoKeys";

// ---- Azure ML forms (managedCompute, serverless): blocked before any write
pub const WORKSPACE_NOT_FOUND: &str = "WorkspaceNotFound";
pub const WORKSPACE_NOT_READY: &str = "WorkspaceNotReady";
pub const WORKSPACE_DELETING: &str = "WorkspaceDeleting";
/// The registry has no such model (or version).
pub const MODEL_NOT_FOUND: &str = "ModelNotFound";
/// The model is not offered in this form (managed compute, serverless).
pub const MODEL_NOT_OFFERED: &str = "ModelNotOffered";
/// The instance type is not one the model (or the region) allows.
pub const INSTANCE_TYPE_NOT_SUPPORTED: &str = "InstanceTypeNotSupported";
/// A serverless model needs a marketplace subscription the AIWorkspace does not allow.
pub const MARKETPLACE_NOT_ALLOWED: &str = "MarketplaceSubscriptionNotAllowed";
pub const MARKETPLACE_SUBSCRIPTION_FAILED: &str = "MarketplaceSubscriptionFailed";

// ---- AIAccount
/// Deletion of an AIAccount is held while ModelDeployments use it.
pub const IN_USE: &str = "InUse";
pub const KEY_STORED: &str = "KeyStored";

// ---- Events
pub const DRIFT_DETECTED: &str = "DriftDetected";
pub const RETAINED: &str = "Retained";
pub const NOT_DELETED_IN_AZURE: &str = "NotDeletedInAzure";
pub const LEFT_IN_PLACE: &str = "LeftInPlace";
pub const DELETED: &str = "Deleted";
