-- SPDX-License-Identifier: Apache-2.0
-- KEYS: pools, conf hash, version. ARGV: pool ('' = global), field, value.
if ARGV[1] ~= '' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return {'nopool'}
end
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[3] then return {'same'} end
local v = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return {'ok', v}
