-- SPDX-License-Identifier: Apache-2.0
-- KEYS: pools, conf hash, version. ARGV: pool ('' = global), field.
if ARGV[1] ~= '' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return {'nopool'}
end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return {'notset'} end
local v = redis.call('INCR', KEYS[3])
redis.call('HDEL', KEYS[2], ARGV[2])
return {'ok', v}
