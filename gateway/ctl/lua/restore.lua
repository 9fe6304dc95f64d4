-- SPDX-License-Identifier: Apache-2.0
-- KEYS: version, then the keys of the current state (ARGV[3] of them, all
-- deleted), then the keys to write. ARGV: the version read with the state
-- ('' = none), the dump's config_version, the number of keys to delete,
-- then for each key to write: its kind (set, zset or hash), the number n
-- of values that follow, and the n values (set: members; zset: score,
-- member pairs; hash: field, value pairs). The plan is checked whole before
-- anything is written; a key to write is deleted first, so no type can be
-- wrong. Returns {'changed', version now} when a write came in since the
-- state was read (nothing written), or {'ok', new version}: one more than
-- before, and at least config_version + 1.
local floor, nd = tonumber(ARGV[2]), tonumber(ARGV[3])
if not floor or not nd or nd < 0 or nd + 1 > #KEYS then
  return redis.error_reply('restore: bad arguments')
end
local cmds, a, k = {set = 'SADD', zset = 'ZADD', hash = 'HSET'}, 4, nd + 2
while a <= #ARGV do
  local n = tonumber(ARGV[a + 1])
  if not cmds[ARGV[a]] or not n or n < 1 or a + 1 + n > #ARGV or k > #KEYS
     or (ARGV[a] ~= 'set' and n % 2 == 1) then
    return redis.error_reply('restore: bad plan at argument ' .. a)
  end
  a, k = a + 2 + n, k + 1
end
if k ~= #KEYS + 1 then return redis.error_reply('restore: keys and plan differ') end
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return {'changed', cur} end
local v = redis.call('INCR', KEYS[1])
if v <= floor then
  v = floor + 1
  redis.call('SET', KEYS[1], string.format('%d', v))
end
for i = 2, nd + 1, 1000 do
  redis.call('DEL', unpack(KEYS, i, math.min(i + 999, nd + 1)))
end
a, k = 4, nd + 2
while a <= #ARGV do
  local c, n = cmds[ARGV[a]], tonumber(ARGV[a + 1])
  redis.call('DEL', KEYS[k])
  for i = a + 2, a + 1 + n, 1000 do
    redis.call(c, KEYS[k], unpack(ARGV, i, math.min(i + 999, a + 1 + n)))
  end
  a, k = a + 2 + n, k + 1
end
return {'ok', v}
