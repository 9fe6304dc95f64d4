-- SPDX-License-Identifier: Apache-2.0
-- KEYS: pools, ring, version. ARGV: pool, "<host:port>#", mode (add, weight,
-- remove), the most replicas a ring takes, then score/member pairs of the
-- replica's new vnodes. Returns {'ok', old vnode count, version} or a
-- refusal: nopool, noreplica, {'exists', count} (add), {'full', replicas}
-- (add), {'same', count} (weight: nothing to change).
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'nopool'} end
local old, have, addrs, n = {}, {}, {}, 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if string.sub(m, 1, #ARGV[2]) == ARGV[2] then old[#old + 1] = m; have[m] = true end
  local a = string.match(m, '^(.*)#')
  if a and not addrs[a] then addrs[a] = true; n = n + 1 end
end
if ARGV[3] == 'add' and #old > 0 then return {'exists', #old} end
if ARGV[3] == 'add' and n >= tonumber(ARGV[4]) then return {'full', n} end
if ARGV[3] ~= 'add' and #old == 0 then return {'noreplica'} end
if ARGV[3] == 'weight' and #old * 2 == #ARGV - 4 then
  local same = true
  for i = 6, #ARGV, 2 do if not have[ARGV[i]] then same = false; break end end
  if same then return {'same', #old} end
end
local v = redis.call('INCR', KEYS[3])
for i = 1, #old, 1000 do
  redis.call('ZREM', KEYS[2], unpack(old, i, math.min(i + 999, #old)))
end
for i = 5, #ARGV, 1000 do
  redis.call('ZADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return {'ok', #old, v}
