-- SPDX-License-Identifier: Apache-2.0
-- KEYS: pools, global conf, pool conf. ARGV: pool ('' = global only).
if ARGV[1] ~= '' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {0} end
local p = {}
if ARGV[1] ~= '' then p = redis.call('HGETALL', KEYS[3]) end
return {1, redis.call('HGETALL', KEYS[2]), p}
