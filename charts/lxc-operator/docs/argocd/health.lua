-- Argo CD health of an lxc.infrahaus.dev object (LxcContainer, LxcTemplate, ProxmoxNode), read
-- from the kstatus conditions the operator writes: Healthy when Ready=True for the current
-- generation, Degraded when Stalled=True (the operator waits for a change of the spec or of
-- the world), Progressing otherwise (including a spec change not yet observed).
local hs = { status = "Progressing", message = "Waiting for lxc-operator to observe the object" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.message = "Waiting for lxc-operator to observe generation " .. generation
  return hs
end
local ready, stalled
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  elseif condition.type == "Stalled" then
    stalled = condition
  end
end
local function describe(condition)
  local text = condition.reason or ""
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif ready ~= nil then
  hs.message = describe(ready)
end
return hs
