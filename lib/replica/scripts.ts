/**
 * The Lua scripts of replica coordination (replicas.md §3). Each one reads and writes in one
 * atomic step what two replicas could otherwise interleave: the lease and its listing, a job
 * and its owner, an ownership check and the write it guards, an owner lookup and the append to
 * the owner's signal stream, a claim and the unprocessed signals of the claimed jobs.
 *
 * Scripts are sent with `EVALSHA` and, when the server does not know them yet (first use, or a
 * master promoted by Sentinel that never saw them), once with `EVAL`, which caches them.
 * `OWN` and `FORWARD` append to the stream of a replica they learn inside the script, a key not
 * declared up front: fine on a single Redis or a Sentinel-managed master, not on Redis Cluster
 * (which the reference's single jobs hash does not support either).
 *
 * Redis counts every command a script runs in its statistics, so the scripts keep the number
 * of inner commands small: restarts are confirmed in batches (`TOUCH`: one `HMGET`, one `HSET`
 * for a whole batch).
 *
 * @module
 */
import { createHash } from "node:crypto";

/** A script and its SHA-1 (the `EVALSHA` name). */
export interface Script {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

function script(name: string, source: string): Script {
  return { name, source, sha: createHash("sha1").update(source).digest("hex") };
}

/**
 * Renews (or takes) a lease and lists every replica with its lease expiry.
 * KEYS: lease, replicas. ARGV: id, token, ttl ms.
 * Returns `{0, now, pttl}` when another process holds the lease; else `{1 (renewed) or
 * 2 (taken: it had expired or never existed), now, {id, expiry, …}}`. `now` is Redis time (ms).
 */
export const LEASE = script(
  "lease",
  `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
local cur = redis.call('GET', KEYS[1])
local rc
if cur == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ttl)
  rc = 1
elseif not cur then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
  rc = 2
else
  return {0, now, redis.call('PTTL', KEYS[1])}
end
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
return {rc, now, redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')}`,
);

/**
 * Gives a lease up (graceful shutdown): the survivors see it expired at their next scan.
 * KEYS: lease, replicas. ARGV: id, token.
 */
export const RELEASE_LEASE = script(
  "release_lease",
  `if redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
  return 1
end
return 0`,
);

/**
 * The fields a dead replica still owns; nil if its lease exists (it is alive again). When it
 * owns nothing, its stream and its entry in the replica set are removed.
 * KEYS: owners, lease of the dead, its stream, replicas. ARGV: dead id.
 */
export const LIST_OWNED = script(
  "list_owned",
  `if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then out[#out + 1] = all[i] end
end
if #out == 0 then
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return out`,
);

/**
 * Compare-and-set of owners: every listed field still owned by `from` (or, with `from` = "",
 * owned by nobody) becomes owned by `me`. Returns nil if `from`'s lease exists; else
 * `{{field, job value or "", …}, {stream entries of \`from\` for the claimed fields}}`: the
 * signals appended for them before the claim, which the claimer processes.
 * KEYS: owners, jobs, lease of from, stream of from. ARGV: from, me, fields….
 */
export const CLAIM = script(
  "claim",
  `if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then return false end
local claimed = {}
local set = {}
for i = 3, #ARGV do
  local f = ARGV[i]
  local o = redis.call('HGET', KEYS[1], f)
  if (ARGV[1] == '' and not o) or o == ARGV[1] then
    redis.call('HSET', KEYS[1], f, ARGV[2])
    claimed[#claimed + 1] = f
    claimed[#claimed + 1] = redis.call('HGET', KEYS[2], f) or ''
    set[f] = true
  end
end
local signals = {}
if ARGV[1] ~= '' and #claimed > 0 then
  for _, e in ipairs(redis.call('XRANGE', KEYS[4], '-', '+')) do
    local kv = e[2]
    for j = 1, #kv, 2 do
      if kv[j] == 'f' and set[kv[j + 1]] then
        signals[#signals + 1] = e
        break
      end
    end
  end
end
return {claimed, signals}`,
);

/**
 * A registration: writes the job and makes `me` its owner in one step; a previous owner that
 * is another replica gets a `replaced` signal. Returns the previous owner (nil if none).
 * KEYS: jobs, owners. ARGV: field, value, me, stream prefix, maxlen, now ms.
 */
export const OWN = script(
  "own",
  `local prev = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if prev ~= ARGV[3] then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  if prev then
    redis.call('XADD', ARGV[4] .. prev, 'MAXLEN', '~', ARGV[5], '*',
      'f', ARGV[1], 's', 'replaced', 't', ARGV[6])
  end
end
return prev`,
);

/**
 * Restart results of a batch of jobs: each value is written where `me` owns the field; a field
 * with no owner at all (its entries lost in a Sentinel failover, or finished elsewhere while
 * this replica could not see it) is owned again, since this replica still drives the job.
 * Returns the fields another replica owns now.
 * KEYS: jobs, owners. ARGV: me, field, value, field, value, ….
 */
export const TOUCH = script(
  "touch",
  `local n = (#ARGV - 1) / 2
local fields = {}
for i = 1, n do fields[i] = ARGV[2 * i] end
local owners = redis.call('HMGET', KEYS[2], unpack(fields))
local writes = {}
local owned = {}
local lost = {}
for i = 1, n do
  local o = owners[i]
  if o == ARGV[1] or not o then
    writes[#writes + 1] = ARGV[2 * i]
    writes[#writes + 1] = ARGV[2 * i + 1]
    if not o then
      owned[#owned + 1] = ARGV[2 * i]
      owned[#owned + 1] = ARGV[1]
    end
  else
    lost[#lost + 1] = ARGV[2 * i]
  end
end
if #writes > 0 then redis.call('HSET', KEYS[1], unpack(writes)) end
if #owned > 0 then redis.call('HSET', KEYS[2], unpack(owned)) end
return lost`,
);

/**
 * A job is done: its entry and its owner go, unless another replica owns it now (then it is
 * that replica's job). Returns 1 or 0.
 * KEYS: jobs, owners. ARGV: field, me.
 */
export const RELEASE_JOB = script(
  "release_job",
  `local o = redis.call('HGET', KEYS[2], ARGV[1])
if o == ARGV[2] or not o then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0`,
);

/**
 * A signal for a job this replica does not drive: appended to its owner's stream, decided in
 * the same step as the owner lookup (so a claim cannot slip in between). Returns `{0}` (no
 * owner: no such job), `{1}` (`me` owns it) or `{2, owner}` (appended).
 * KEYS: owners. ARGV: field, me, stream prefix, maxlen, signal, now ms.
 */
export const FORWARD = script(
  "forward",
  `local o = redis.call('HGET', KEYS[1], ARGV[1])
if not o then return {0} end
if o == ARGV[2] then return {1} end
redis.call('XADD', ARGV[3] .. o, 'MAXLEN', '~', ARGV[4], '*',
  'f', ARGV[1], 's', ARGV[5], 't', ARGV[6])
return {2, o}`,
);

/** Sends one command and resolves with its reply. */
export type RedisCommand = (args: string[], timeoutMs?: number) => Promise<unknown>;

/** Runs `script` with `EVALSHA`, falling back to `EVAL` once when the server lacks it. */
export async function runScript(
  command: RedisCommand,
  s: Script,
  keys: readonly string[],
  args: readonly string[],
  timeoutMs?: number,
): Promise<unknown> {
  const tail = [String(keys.length), ...keys, ...args];
  try {
    return await command(["EVALSHA", s.sha, ...tail], timeoutMs);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
    return await command(["EVAL", s.source, ...tail], timeoutMs);
  }
}
