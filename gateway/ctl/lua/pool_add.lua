-- SPDX-License-Identifier: Apache-2.0
-- KEYS: pools, version. ARGV: pool.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {'exists'} end
local v = redis.call('INCR', KEYS[2])
redis.call('SADD', KEYS[1], ARGV[1])
return {'ok', v}
