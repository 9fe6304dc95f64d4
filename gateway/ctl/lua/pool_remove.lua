-- SPDX-License-Identifier: Apache-2.0
-- KEYS: pools, ring, conf, version. ARGV: pool.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'nopool'} end
local v = redis.call('INCR', KEYS[4])
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return {'ok', v}
