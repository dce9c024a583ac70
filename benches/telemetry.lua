-- Telemetry for wrk, one scooter per request, scooter after scooter of the CSV named by
-- TOKENS (scooter_id,device_token, as `scootfleet scooters import --tokens` writes it), round
-- after round; each of wrk's two threads takes every other row. POINTS points a request (1).
--
-- Where: with FLEET naming the imported CSV (scooter_id,lat,lon,…), each point lies within
-- about 2 m of the scooter's imported place, as a parked scooter's GPS wanders; without it,
-- in a 3 × 3.5 km square of Paris.
-- Order: with ORDER=random, each round goes through the scooters in one fixed shuffled order
-- instead of the CSV's, as devices report in a real fleet (a group commit's rows then lie
-- on pages far apart rather than on neighbouring ones).
-- When: a scooter's points in round k are recorded k * POINTS ms after the run's start, one
-- ms apart, so no two requests carry the same scooter and time, every point is stored, and
-- each run's points are newer than the last run's (and than the import).
local tokens, lats, lons, order, threads, sent, base_ms = {}, {}, {}, {}, {}, 0, 0
local points = tonumber(os.getenv("POINTS") or "1")
local fleet = os.getenv("FLEET")
setup = function(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
init = function(args)
  for line in io.lines(os.getenv("TOKENS")) do
    local token = line:match("^[^,]+,(.+)$")
    if token and token ~= "device_token" then table.insert(tokens, token) end
  end
  if fleet and fleet ~= "" then
    for line in io.lines(fleet) do
      local lat, lon = line:match("^[^,]+,([^,]+),([^,]+),")
      if tonumber(lat) then
        table.insert(lats, tonumber(lat))
        table.insert(lons, tonumber(lon))
      end
    end
  end
  for i = 1, #tokens do order[i] = i - 1 end
  local shuffled = os.getenv("ORDER")
  if shuffled == "random" then
    math.randomseed(7)
    for i = #order, 2, -1 do
      local j = math.random(i)
      order[i], order[j] = order[j], order[i]
    end
  elseif shuffled and shuffled ~= "" and shuffled ~= "csv" then
    error("ORDER is csv or random, not " .. shuffled)
  end
  math.randomseed(id + 1)
  base_ms = os.time() * 1000
end
local function stamp(ms)
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(ms / 1000)) .. string.format(".%03dZ", ms % 1000)
end
-- The request's fixed parts are built once, so that wrk spends little of the machine's CPU
-- per request (it shares the cores with the server): each scooter's head (with its token),
-- and each round's timestamps (every request of a round carries the same ones).
local heads, stamps, stamps_round = {}, {}, -1
local function head(slot, length)
  local h = heads[slot]
  if not h then
    h = "POST /v1/telemetry HTTP/1.1\r\nHost: " .. wrk.headers["Host"] ..
      "\r\nContent-Type: application/json\r\nAuthorization: Bearer " .. tokens[slot + 1] ..
      "\r\nContent-Length: "
    heads[slot] = h
  end
  return h .. length .. "\r\n\r\n"
end
request = function()
  local n = sent * 2 + id
  sent = sent + 1
  local slot, round = order[n % #tokens + 1], math.floor(n / #tokens)
  if round ~= stamps_round then
    for i = 1, points do stamps[i] = stamp(base_ms + round * points + i) end
    stamps_round = round
  end
  local parts = {}
  for i = 1, points do
    local lat, lon = 48.84 + (n % 300) * 0.0001, 2.30 + (n % 500) * 0.0001 + i * 0.00001
    if #lats > 0 then
      lat = lats[slot + 1] + (math.random() - 0.5) * 0.00004
      lon = lons[slot + 1] + (math.random() - 0.5) * 0.00006
    end
    parts[i] = string.format('{"lat":%.6f,"lon":%.6f,"range_km":30,"battery_pct":60,"recorded_at":"%s"}',
      lat, lon, stamps[i])
  end
  local body = '{"points":[' .. table.concat(parts, ",") .. ']}'
  return head(slot, #body) .. body
end
done = function(summary, latency, requests)
  io.write(string.format("non-2xx answers: %d\n", summary.errors.status))
end
