-- SPDX-License-Identifier: Apache-2.0
-- KEYS: tenant hash, API-key hash, version. ARGV: tenant, expires_at ('' =
-- never). Returns {'notenant'}, {'exists'} or {'ok', version}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'notenant'} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'exists'} end
local v = redis.call('INCR', KEYS[3])
if ARGV[2] == '' then
  redis.call('HSET', KEYS[2], 'tenant', ARGV[1])
else
  redis.call('HSET', KEYS[2], 'tenant', ARGV[1], 'expires_at', ARGV[2])
end
return {'ok', v}
