-- SPDX-License-Identifier: Apache-2.0
-- KEYS: pools, replica hash, version. ARGV: ring key head and tail (a
-- pool's ring is head .. pool .. tail, keys.h), "<host:port>#0", state.
-- The replica must be on some pool's ring (every replica has vnode #0), or
-- have a state already (so a replica removed from every pool can still be
-- undrained).
local found = redis.call('EXISTS', KEYS[2]) == 1
if not found then
  for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if redis.call('ZSCORE', ARGV[1] .. p .. ARGV[2], ARGV[3]) then
      found = true; break
    end
  end
end
if not found then return {'noreplica'} end
if (redis.call('HGET', KEYS[2], 'state') or 'active') == ARGV[4] then return {'same'} end
local v = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], 'state', ARGV[4])
return {'ok', v}
