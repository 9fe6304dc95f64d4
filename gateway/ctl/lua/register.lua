-- SPDX-License-Identifier: Apache-2.0
-- KEYS: pools, ring, version, leased, lease. ARGV: pool, "<host:port>#",
-- the most replicas a ring takes, ttl ms, host:port, then score/member
-- pairs of the replica's vnodes. Adds the replica when it has no member on
-- the ring (as replica add), then sets the lease and lists the address in
-- <prefix>leased. Returns {'nopool'}, {'full', replicas} or {'ok', vnodes
-- it had (0 = added now), version or -1}.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'nopool'} end
local old, addrs, n = 0, {}, 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if string.sub(m, 1, #ARGV[2]) == ARGV[2] then old = old + 1 end
  local a = string.match(m, '^(.*)#')
  if a and not addrs[a] then addrs[a] = true; n = n + 1 end
end
local v = -1
if old == 0 then
  if n >= tonumber(ARGV[3]) then return {'full', n} end
  v = redis.call('INCR', KEYS[3])
  for i = 6, #ARGV, 1000 do
    redis.call('ZADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
end
redis.call('SET', KEYS[5], '1', 'PX', ARGV[4])
redis.call('SADD', KEYS[4], ARGV[5])
return {'ok', old, v}
