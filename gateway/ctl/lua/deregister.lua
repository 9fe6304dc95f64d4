-- SPDX-License-Identifier: Apache-2.0
-- KEYS: ring, version, leased, lease, replica hash. ARGV: "<host:port>#",
-- host:port. Takes the replica off the pool's ring and ends its lease; the
-- drain state the registrar set is deleted with it. Returns {'ok', vnodes
-- removed, version}.
local old = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, #ARGV[1]) == ARGV[1] then old[#old + 1] = m end
end
local v = redis.call('INCR', KEYS[2])
for i = 1, #old, 1000 do
  redis.call('ZREM', KEYS[1], unpack(old, i, math.min(i + 999, #old)))
end
redis.call('SREM', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[4], KEYS[5])
return {'ok', #old, v}
