-- SPDX-License-Identifier: Apache-2.0
-- KEYS: API-key hash, version. Returns {'nokey'} or {'ok', version, tenant}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'nokey'} end
local t = redis.call('HGET', KEYS[1], 'tenant') or ''
local v = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
return {'ok', v, t}
