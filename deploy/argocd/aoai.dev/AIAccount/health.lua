-- Argo CD health check for aoai.dev/v1alpha1 AIAccount (cluster-scoped; Lua 5.1, as Argo CD runs it).
-- Healthy: Ready=True for the current generation (account found, key stored in Key Vault).
-- Progressing: not yet observed, deleting (held while deployments still use it), or a transient reason.
-- Degraded: Ready=False with a terminal reason (account not found, authorization, Key Vault access).
local hs = {}

local progressingReasons = {
  Pending = true, Reconciling = true, Progressing = true, Deleting = true, InUse = true,
  DeploymentsRemaining = true, RequestConflict = true, Throttled = true, TooManyRequests = true,
  Transient = true, TransientError = true, Retrying = true, ServiceUnavailable = true, Timeout = true,
  AzureThrottled = true, AzureUnavailable = true, AzureUnreachable = true, WaitingForAzure = true,
}

local function readyCondition(status)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local function describe(condition)
  local text = condition.reason or "Unknown"
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: held until no ModelDeployment uses this account"
  return hs
end

local status = obj.status
local ready = readyCondition(status)
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the Ready condition"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
local observed = ready.observedGeneration or (status and status.observedGeneration)
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = "Account ready at " .. (status.endpoint or "")
  return hs
end

if ready.status ~= "False" or progressingReasons[ready.reason or ""] == true then
  hs.status = "Progressing"
  hs.message = describe(ready)
  return hs
end

hs.status = "Degraded"
hs.message = describe(ready)
return hs
