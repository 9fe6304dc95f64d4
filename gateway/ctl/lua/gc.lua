-- SPDX-License-Identifier: Apache-2.0
-- KEYS: leased, lease_gone, pools, version. ARGV: lease key head (a lease
-- is head .. address), grace seconds, ring key head and tail (keys.h).
-- For every leased address: lease present -> forget any gone-time; lease
-- absent -> note the first time it was seen gone (Redis TIME), and once it
-- has been gone for the grace period take its members off every pool's
-- ring and forget the address. Returns {'ok', version or -1, {removed},
-- {waiting}}.
local now = tonumber(redis.call('TIME')[1])
local grace = tonumber(ARGV[2])
local live, fresh, removed, waiting = {}, {}, {}, {}
for _, a in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. a) == 1 then
    live[#live + 1] = a
  else
    local t = tonumber(redis.call('HGET', KEYS[2], a) or '')
    if not t then t = now; fresh[#fresh + 1] = a end
    if now - t >= grace then removed[#removed + 1] = a
    else waiting[#waiting + 1] = a .. ' ' .. (grace - (now - t)) end
  end
end
local v = -1
if #removed > 0 then v = redis.call('INCR', KEYS[4]) end
for _, a in ipairs(live) do redis.call('HDEL', KEYS[2], a) end
for _, a in ipairs(fresh) do redis.call('HSET', KEYS[2], a, now) end
local pools = redis.call('SMEMBERS', KEYS[3])
for _, a in ipairs(removed) do
  for _, p in ipairs(pools) do
    local ring, old = ARGV[3] .. p .. ARGV[4], {}
    for _, m in ipairs(redis.call('ZRANGE', ring, 0, -1)) do
      if string.sub(m, 1, #a + 1) == a .. '#' then old[#old + 1] = m end
    end
    for i = 1, #old, 1000 do
      redis.call('ZREM', ring, unpack(old, i, math.min(i + 999, #old)))
    end
  end
  redis.call('SREM', KEYS[1], a)
  redis.call('HDEL', KEYS[2], a)
end
return {'ok', v, removed, waiting}
