-- Argo CD health check for aoai.dev/v1alpha1 ModelDeployment (Lua 5.1, as Argo CD runs it).
-- Healthy: Ready=True for the current generation. Suspended: spec.paused. Progressing: not yet observed,
-- an Azure operation in flight, deleting, or a transient reason (the operator retries by itself).
-- Degraded: Ready=False with a terminal reason (quota, unsupported model, authorization, policy, ownership).
local hs = {}

local progressingReasons = {
  Pending = true, Reconciling = true, Progressing = true, Creating = true, Updating = true,
  Deleting = true, Provisioning = true, Accepted = true, OperationInProgress = true,
  WaitingForOperation = true, WaitingForAccount = true, AccountNotReady = true,
  RequestConflict = true, Throttled = true, TooManyRequests = true, Transient = true,
  TransientError = true, Retrying = true, ServiceUnavailable = true, Timeout = true,
  WaitingForAzure = true, Pausing = true, Resuming = true, AccountDeleting = true,
  AzureThrottled = true, AzureUnavailable = true, AzureUnreachable = true,
}
local progressingStates = { Creating = true, Accepted = true, Updating = true, Deleting = true, Moving = true }

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
  hs.message = "Deleting: waiting for the operator to apply the deletion policy"
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

local paused = obj.spec ~= nil and obj.spec.paused == true
if paused and (ready.status == "True" or ready.reason == "Paused") then
  hs.status = "Suspended"
  hs.message = "Deployment is paused (spec.paused)"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  local name = status.deploymentName or ""
  local endpoint = status.endpoint or ""
  hs.message = "Deployment " .. name .. " is ready at " .. endpoint
  return hs
end

if ready.status ~= "False" then
  hs.status = "Progressing"
  hs.message = describe(ready)
  return hs
end

local inFlight = status.pendingOperation ~= nil
  or (status.provisioningState ~= nil and progressingStates[status.provisioningState] == true)
if inFlight or progressingReasons[ready.reason or ""] == true then
  hs.status = "Progressing"
  hs.message = describe(ready)
  return hs
end

hs.status = "Degraded"
hs.message = describe(ready)
return hs
