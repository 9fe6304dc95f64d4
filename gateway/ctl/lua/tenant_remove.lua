-- SPDX-License-Identifier: Apache-2.0
-- KEYS: tenant hash, version, then API-key hashes to revoke with it.
-- ARGV: tenant. A key is deleted only if it still names the tenant.
-- Returns {'notenant'} or {'ok', version, keys revoked}.
local gone = {}
for i = 3, #KEYS do
  if redis.call('HGET', KEYS[i], 'tenant') == ARGV[1] then gone[#gone + 1] = KEYS[i] end
end
if redis.call('EXISTS', KEYS[1]) == 0 and #gone == 0 then return {'notenant'} end
local v = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
for _, k in ipairs(gone) do redis.call('DEL', k) end
return {'ok', v, #gone}
