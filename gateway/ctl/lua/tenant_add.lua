-- SPDX-License-Identifier: Apache-2.0
-- KEYS: tenant hash, version. ARGV: models, rps, burst ('' = keep the
-- current value, or 0 for a new tenant). Returns {'same'} or {'ok', version,
-- created (0/1), rps, burst}.
local new = redis.call('EXISTS', KEYS[1]) == 0
local rps, burst = ARGV[2], ARGV[3]
if rps == '' then rps = (not new and redis.call('HGET', KEYS[1], 'rps')) or '0' end
if burst == '' then burst = (not new and redis.call('HGET', KEYS[1], 'burst')) or '0' end
if not new and redis.call('HGET', KEYS[1], 'models') == ARGV[1]
   and redis.call('HGET', KEYS[1], 'rps') == rps
   and redis.call('HGET', KEYS[1], 'burst') == burst then
  return {'same', 0, 0, rps, burst}
end
local v = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'models', ARGV[1], 'rps', rps, 'burst', burst)
return {'ok', v, new and 1 or 0, rps, burst}
