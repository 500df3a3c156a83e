-- REST bodies with a field their request message does not have are refused with 400, a
-- google.rpc.Status naming the field (reason UNKNOWN_FIELD): Envoy's gRPC-JSON transcoder
-- would drop the field silently. `python -m formation_mcp.rest_bodies` puts REST_ROUTES and
-- REST_MESSAGES (from the protos) in front of this file: generated/rest_bodies.lua, the file
-- Envoy loads. Only unknown fields are judged here; JSON that does not parse, or is deeper
-- than MAX_DEPTH, is left to the transcoder (which refuses what it cannot read).

local MAX_DEPTH = 64
local ESCAPES = { n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" }

local function skip_space(text, i)
  return text:find("[^ \t\r\n]", i) or #text + 1
end

-- The string starting at `i` (a quote): its text (escapes decoded, non-ASCII \u as "?": no
-- field name has one) and the index after it; nil when it does not end.
local function read_string(text, i)
  local parts, j = {}, i + 1
  while true do
    local k = text:find('["\\]', j)
    if k == nil then
      return nil
    end
    parts[#parts + 1] = text:sub(j, k - 1)
    if text:sub(k, k) == '"' then
      return table.concat(parts), k + 1
    end
    local escape = text:sub(k + 1, k + 1)
    if escape == "u" then
      local code = tonumber(text:sub(k + 2, k + 5), 16)
      parts[#parts + 1] = (code ~= nil and code < 128) and string.char(code) or "?"
      j = k + 6
    else
      parts[#parts + 1] = ESCAPES[escape] or escape
      j = k + 2
    end
  end
end

-- Walks the JSON value at `i`. `message` names the message it should be (nil: free-form).
-- Returns the index after the value; or nil, then the unknown field's path and the message
-- it is not in; or false when the JSON cannot be judged here (malformed, too deep).
local check_value

local function check_object(text, i, message, path, depth)
  local fields = message and REST_MESSAGES[message]
  i = skip_space(text, i + 1)
  if text:sub(i, i) == "}" then
    return i + 1
  end
  while true do
    if text:sub(i, i) ~= '"' then
      return false
    end
    local key, after = read_string(text, i)
    if key == nil then
      return false
    end
    i = skip_space(text, after)
    if text:sub(i, i) ~= ":" then
      return false
    end
    local child
    if fields ~= nil then
      child = fields[key]
      if child == nil then
        return nil, path .. key, message
      end
      if child == "" or child == "*" then
        child = nil
      end
    end
    local next_index, bad, where = check_value(text, i + 1, child, path .. key, depth + 1)
    if not next_index then
      return next_index, bad, where
    end
    i = skip_space(text, next_index)
    local separator = text:sub(i, i)
    if separator == "}" then
      return i + 1
    end
    if separator ~= "," then
      return false
    end
    i = skip_space(text, i + 1)
  end
end

local function check_array(text, i, message, path, depth)
  i = skip_space(text, i + 1)
  if text:sub(i, i) == "]" then
    return i + 1
  end
  local index = 0
  while true do
    local next_index, bad, where =
      check_value(text, i, message, path .. "[" .. index .. "]", depth + 1)
    if not next_index then
      return next_index, bad, where
    end
    i = skip_space(text, next_index)
    local separator = text:sub(i, i)
    if separator == "]" then
      return i + 1
    end
    if separator ~= "," then
      return false
    end
    i = skip_space(text, i + 1)
    index = index + 1
  end
end

check_value = function(text, i, message, path, depth)
  if depth > MAX_DEPTH then
    return false
  end
  i = skip_space(text, i)
  local first = text:sub(i, i)
  if first == "{" then
    return check_object(text, i, message, path ~= "" and path .. "." or "", depth)
  elseif first == "[" then
    return check_array(text, i, message, path, depth)
  elseif first == '"' then
    local _, after = read_string(text, i)
    return after or false
  end
  return text:find("[,%]} \t\r\n]", i) or #text + 1
end

-- `text` as a JSON string. Field names are ASCII: anything else in what the client sent is
-- shown as "?" (one per UTF-8 sequence), so the answer is valid JSON whatever came in.
local function json_string(text)
  local ascii = text:gsub("[\192-\255][\128-\191]*", "?"):gsub("[\128-\255]", "?")
  local escaped = ascii:gsub('[%c"\\]', function(char)
    return string.format("\\u%04x", char:byte())
  end)
  return '"' .. escaped .. '"'
end

local function field_names(message)
  local names = {}
  for key, _ in pairs(REST_MESSAGES[message]) do
    if not key:find("%u") then -- proto names; their JSON names add capitals
      names[#names + 1] = key
    end
  end
  table.sort(names)
  return table.concat(names, ", ")
end

local function refuse(handle, field, message)
  local description = "unknown field: " .. message .. " has " .. field_names(message)
  local body = '{"code":3,"message":' .. json_string(field .. ": " .. description)
    .. ',"details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",'
    .. '"reason":"UNKNOWN_FIELD","domain":"formation.mcp","metadata":{"field":'
    .. json_string(field) .. '}},{"@type":"type.googleapis.com/google.rpc.BadRequest",'
    .. '"field_violations":[{"field":' .. json_string(field) .. ',"description":'
    .. json_string(description) .. ',"reason":"UNKNOWN_FIELD"}]}]}'
  -- Tells the local-reply mapper (envoy.yaml) that this 400 already is a Status.
  handle:streamInfo():dynamicMetadata():set("fmcp", "own_reply", true)
  handle:respond({ [":status"] = "400", ["content-type"] = "application/json" }, body)
end

local function route_message(method, path)
  for _, route in ipairs(REST_ROUTES) do
    if route[1] == method and path:find(route[2]) then
      return route[3]
    end
  end
  return nil
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local content_type = headers:get("content-type") or ""
  if content_type:sub(1, 16) == "application/grpc" then
    return
  end
  local path = (headers:get(":path") or ""):match("^[^?]*")
  local message = route_message(headers:get(":method") or "", path)
  if message == nil then
    return
  end
  local body = handle:body()
  if body == nil or body:length() == 0 then
    return
  end
  local ok, next_index, field, where = pcall(check_value, body:getBytes(0, body:length()), 1, message, "", 0)
  if ok and next_index == nil and field ~= nil then
    refuse(handle, field, where)
  end
end
