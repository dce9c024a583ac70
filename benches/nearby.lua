-- wrk script: nearby searches (500 m, 10 results) from random places in central Paris,
-- the same sequence every run. Used by nearby_compare.sh and telemetry_wrk.sh.
math.randomseed(42)
request = function()
  local lat = 48.83 + math.random() * 0.05
  local lon = 2.28 + math.random() * 0.12
  return wrk.format("GET", string.format("/v1/scooters/nearby?lat=%.5f&lon=%.5f&radius_m=500&limit=10", lat, lon))
end
