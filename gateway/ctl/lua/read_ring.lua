-- SPDX-License-Identifier: Apache-2.0
-- Reads, in one atomic step. KEYS: pools, ring. ARGV: pool.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {0} end
return {1, redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')}
