# SPDX-License-Identifier: Apache-2.0
"""The LLM bench's analysis: the oracle bounds computed offline from a trace,
the per-router row from the calls' records, two-gateway agreement, and the
markdown table. Pure functions over lists: no processes, no I/O.

Definitions (docs/llm-bench.md says the same in prose):
  - a call's prompt units = its prompt length in bytes; its hit units =
    leading cached blocks x block; hit ratio = sum(hit units) / sum(prompt
    units), over the calls that have the x-kv trailers;
  - a trace is given as a list of chains (a chain = the call's block values
    in order, from llm_workload.block_chain) with the prompt units beside it.

Oracles (capacity: `replicas` caches of `k` blocks each):
  - min_bound: an UPPER BOUND for any router. The union of the replicas'
    caches never holds more than replicas*k blocks, a block enters it only
    when a call brings it, and a call's leading hits on its replica are
    blocks present in that union; so no router can save more blocks than
    one cache of replicas*k blocks that counts every present block (not just
    leading ones) and evicts optimally. Belady's MIN (evict the block used
    farthest in the future; with bypass: a block is not kept when its next
    use is farther than every cached block's) is optimal for that cache, so
    its hits bound every router's. Computed on the trace order; concurrent
    calls on real replicas may see a slightly permuted order.
  - compulsory_bound: every block reference but the first of each block
    value (an infinite cache): a looser upper bound, capacity-free.
  - greedy_reference: a strong reference, NOT a bound: a router with perfect
    knowledge of `replicas` LRU caches of k blocks (same model as the
    simulated replica: lru_touch_order) sends each call to the replica with
    the longest leading match among those under the bounded-load cap
    ceil(cap_factor * (calls so far + 1) / replicas), ties to the fewest calls,
    then the lowest index.
"""

import heapq
import math


def percentile(sorted_vals, q):
    """The <q> quantile (0..1) of an ascending list (nearest rank), or None."""
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(math.ceil(q * len(sorted_vals))) - 1))
    return sorted_vals[i]


# --------------------------------------------------------------------------
# Cache models
# --------------------------------------------------------------------------

class LRUBlocks:
    """An LRU cache of block values with room for <capacity> blocks, modelled
    on the simulated replica (gateway/replica/kvcache.h): lookup() counts the
    leading cached blocks of a chain; admit() stores the chain after its
    prefill: at most its first <capacity> blocks; the present ones are
    refreshed first (so storing never evicts a block of the same prompt), the
    missing ones inserted from the last to the first, evicting the least
    recent; then the chain is refreshed again. With touch order "reverse"
    (the replica's) refreshes and inserts go from the last block to the
    first, so block 0 ends most recent and a prefix loses its tail before its
    head; "forward" goes from the first to the last."""

    def __init__(self, capacity, touch_order="reverse"):
        if capacity < 0 or touch_order not in ("reverse", "forward"):
            raise ValueError("bad LRUBlocks parameters")
        self.capacity = capacity
        self.reverse = touch_order == "reverse"
        self.d = {}  # insertion-ordered: first = least recent

    def __len__(self):
        return len(self.d)

    def lookup(self, chain):
        n = 0
        for b in chain:
            if b not in self.d:
                break
            n += 1
        return n

    def _touch(self, order):
        for b in order:
            if b in self.d:
                del self.d[b]
                self.d[b] = True

    def admit(self, chain):
        chain = chain[:self.capacity]
        order = list(reversed(chain)) if self.reverse else list(chain)
        self._touch(order)
        for b in order:
            if b in self.d:
                continue
            if len(self.d) >= self.capacity:
                del self.d[next(iter(self.d))]
            self.d[b] = True
        self._touch(order)


def min_bound(chains, capacity):
    """Blocks hit by Belady's MIN with bypass on the flattened block references
    of <chains> with one cache of <capacity> blocks: per call, a list of hit
    counts (any position, not only leading)."""
    seq = [b for ch in chains for b in ch]
    nxt = [0] * len(seq)
    last = {}
    inf = len(seq) + 1
    for p in range(len(seq) - 1, -1, -1):
        nxt[p] = last.get(seq[p], inf)
        last[seq[p]] = p
    cache = {}  # block -> its next use
    heap = []  # (-next use, block), stale entries skipped
    out = []
    p = 0
    for ch in chains:
        hits = 0
        for b in ch:
            nu = nxt[p]
            p += 1
            if b in cache:
                hits += 1
                if nu >= inf:
                    del cache[b]
                    continue
                cache[b] = nu
                heapq.heappush(heap, (-nu, b))
                continue
            if nu >= inf or capacity == 0:
                continue
            if len(cache) >= capacity:
                while True:
                    negu, victim = heap[0]
                    if cache.get(victim) == -negu:
                        break
                    heapq.heappop(heap)
                if -negu <= nu:
                    continue  # bypass: the newcomer is needed last
                heapq.heappop(heap)
                del cache[victim]
            cache[b] = nu
            heapq.heappush(heap, (-nu, b))
        out.append(hits)
    return out


def compulsory_bound(chains):
    """Per call, the blocks seen earlier in the trace (an infinite cache)."""
    seen = set()
    out = []
    for ch in chains:
        out.append(sum(1 for b in ch if b in seen))
        seen.update(ch)
    return out


def greedy_reference(chains, replicas, capacity, cap_factor=1.25, touch_order="reverse"):
    """(leading hits per call, replica index per call) of the perfect-knowledge
    longest-match router described in the module comment."""
    caches = [LRUBlocks(capacity, touch_order) for _ in range(replicas)]
    load = [0] * replicas
    hits, picks = [], []
    for i, ch in enumerate(chains):
        cap = math.ceil(cap_factor * (i + 1) / replicas)
        best = None
        for r in range(replicas):
            if load[r] >= cap:
                continue
            m = caches[r].lookup(ch)
            cand = (-m, load[r], r)
            if best is None or cand < best:
                best = cand
        r = best[2]
        hits.append(-best[0])
        picks.append(r)
        load[r] += 1
        caches[r].admit(ch)
    return hits, picks


def lru_fixed_assignment(chains, picks, replicas, capacity, touch_order="reverse"):
    """Leading hits per call when call i goes to replica picks[i] (the cache
    model replayed on a given assignment, e.g. a ring's)."""
    caches = [LRUBlocks(capacity, touch_order) for _ in range(replicas)]
    out = []
    for ch, r in zip(chains, picks):
        out.append(caches[r].lookup(ch))
        caches[r].admit(ch)
    return out


def replay_hit_ratio(chains, units, results, replica_ids, k, block, touch_order="reverse"):
    """The hit ratio the cache model predicts for a run's actual assignment:
    the answered calls, in the order they were sent, replayed on LRU caches of
    <k> blocks, one per id of <replica_ids>. Beside the ratio the replicas
    reported, it checks the model the oracle uses (a gap means the replicas'
    caches do not behave as modelled, or calls overlapped). None when no call
    was answered by a known replica."""
    index = {rid: i for i, rid in enumerate(replica_ids)}
    calls = sorted((r.sent, r.index) for r in results
                   if r.ok and r.replica in index and r.sent is not None)
    if not calls:
        return None
    caches = [LRUBlocks(k, touch_order) for _ in replica_ids]
    hits = total = 0
    for _, i in calls:
        c = caches[index[results[i].replica]]
        hits += c.lookup(chains[i]) * block
        total += units[i]
        c.admit(chains[i])
    return hits / total if total else None


def hit_ratio(hit_blocks, units, block):
    """sum(hit blocks x block) / sum(units)."""
    total = sum(units)
    return (block * sum(hit_blocks) / total) if total else None


def oracle_rows(chains, units, block, replicas, k, touch_order="reverse"):
    """{name: hit ratio} for the bounds and the reference."""
    g_hits, g_picks = greedy_reference(chains, replicas, k, touch_order=touch_order)
    loads = [g_picks.count(r) for r in range(replicas)]
    return {
        "min_bound": hit_ratio(min_bound(chains, replicas * k), units, block),
        "compulsory_bound": hit_ratio(compulsory_bound(chains), units, block),
        "greedy_reference": hit_ratio(g_hits, units, block),
        "greedy_max_mean_load": max(loads) / (sum(loads) / replicas) if sum(loads) else None,
    }


# --------------------------------------------------------------------------
# Rows from the records (llm_workload.CallResult or anything with the same
# attributes)
# --------------------------------------------------------------------------

def router_row(results, replica_ids, prevs=None):
    """The figures of one router's run. <replica_ids>: every replica of the
    pool (those that got no call count as load 0); <prevs> (optional): each
    call's previous turn's index (-1 for a first turn), for the share of
    follow-up turns answered by their previous turn's replica."""
    ok = [r for r in results if r.ok]
    kv = [r for r in ok if r.prompt_units is not None and r.hit_units is not None]
    ttft = sorted(r.ttft for r in ok if r.ttft is not None)
    total = sorted(r.total for r in ok if r.total is not None)
    load = {rid: 0 for rid in replica_ids}
    unknown = 0
    for r in ok:
        if r.replica in load:
            load[r.replica] += 1
        else:
            unknown += 1
    mean = sum(load.values()) / len(load) if load else 0
    units = sum(r.prompt_units for r in kv)
    status = {}
    for r in results:
        status[r.code] = status.get(r.code, 0) + 1
    prev = [r for r in results if r.prev_done is not None]
    lag = sorted(r.sent - r.scheduled for r in results if r.sent is not None)
    follow = [0, 0]
    for p, r in zip(prevs or (), results):
        if p >= 0 and r.ok and r.replica and results[p].ok and results[p].replica:
            follow[1] += 1
            follow[0] += results[p].replica == r.replica
    return {
        "calls": len(results),
        "ok": len(ok),
        "failed": sum(1 for r in results if not r.ok and r.code != "NOT_STARTED"),
        "not_started": sum(1 for r in results if r.code == "NOT_STARTED"),
        "status": dict(sorted(status.items(), key=lambda kv_: str(kv_[0]))),
        "kv_calls": len(kv),
        "hit_ratio": (sum(r.hit_units for r in kv) / units) if units else None,
        "ttft_p50": percentile(ttft, 0.5),
        "ttft_p99": percentile(ttft, 0.99),
        "total_p99": percentile(total, 0.99),
        "load": load,
        "unknown_replica": unknown,
        "max_mean_load": (max(load.values()) / mean) if mean else None,
        "turns_sent_before_previous_done": sum(1 for r in prev if not r.prev_done),
        "send_lateness_p99": percentile(lag, 0.99),
        "followups": follow[1],
        "followups_sticky": follow[0] / follow[1] if follow[1] else None,
    }


def _ms(v):
    return "-" if v is None else "%.1f" % (v * 1000.0)


def _pct(v):
    return "-" if v is None else "%.1f%%" % (100.0 * v)


def table(rows, oracle, ref_name="least_loaded"):
    """Markdown: one line per router (rows: list of (name, row or a string
    saying why it did not run)), then the oracle lines."""
    bound = oracle.get("min_bound") if oracle else None
    ref = next((r for n, r in rows if n == ref_name and isinstance(r, dict)), None)
    out = ["| router | calls ok/failed/not started | cache-hit ratio (prefill units saved) | "
           "% of oracle bound | TTFT p50 ms | TTFT p99 ms | total p99 ms | max/mean load | "
           "TTFT p50 / least_loaded's |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        if not isinstance(r, dict):
            out.append("| %s | %s | | | | | | | |" % (name, r))
            continue
        hr = r["hit_ratio"]
        of = "-" if hr is None or not bound else "%.0f%%" % (100.0 * hr / bound)
        rel = "-"
        if ref and ref["ttft_p50"] and r["ttft_p50"] is not None:
            rel = "%.2f" % (r["ttft_p50"] / ref["ttft_p50"])
        out.append("| %s | %d/%d/%d | %s | %s | %s | %s | %s | %s | %s |"
                   % (name, r["ok"], r["failed"], r["not_started"],
                      "n/a (no x-kv trailers)" if hr is None else _pct(hr), of,
                      _ms(r["ttft_p50"]), _ms(r["ttft_p99"]), _ms(r["total_p99"]),
                      "-" if r["max_mean_load"] is None else "%.2f" % r["max_mean_load"], rel))
    if oracle:
        out.append("| oracle bound (Belady MIN, one cache of all replicas' blocks) | | %s | 100%% "
                   "| | | | | |" % _pct(oracle["min_bound"]))
        g = oracle["greedy_reference"]
        out.append("| reference: perfect-knowledge longest match, 4 LRU caches, load cap 1.25 | | "
                   "%s | %s | | | | %s | |"
                   % (_pct(g), "-" if not bound else "%.0f%%" % (100.0 * g / bound),
                      "-" if oracle["greedy_max_mean_load"] is None
                      else "%.2f" % oracle["greedy_max_mean_load"]))
        out.append("| (infinite cache: every repeated block hits) | | %s | | | | | | |"
                   % _pct(oracle["compulsory_bound"]))
    return "\n".join(out)


# --------------------------------------------------------------------------
# Two gateways
# --------------------------------------------------------------------------

def agreement(chains, prevs, results):
    """Agreement of two gateways that split one trace (results[i].gateway is
    0 or 1, results[i].replica the replica that answered call i; prevs[i] the
    index of call i's previous turn, -1 for a first turn).

    first_time: for each first block value (the prompt's first block; here
    the system prompt's), the replica of gateway 0's first call carrying it
    against gateway 1's first; the fraction of the values both gateways saw
    that went to the same replica.
    followups: for each answered follow-up turn whose previous turn was
    answered too, whether it went to the previous turn's replica, split by
    whether the previous turn went through the other gateway (cross) or the
    same one (same). A router that keeps a conversation where its prefix is
    cached scores the same either way when the gateways agree; a gap between
    cross and same is the gateways disagreeing."""
    first = [{}, {}]
    for ch, r in zip(chains, results):
        if ch and r.ok and r.replica and r.gateway in (0, 1):
            first[r.gateway].setdefault(ch[0], r.replica)
    both = [b for b in first[0] if b in first[1]]
    same_first = sum(1 for b in both if first[0][b] == first[1][b])
    counts = {"cross": [0, 0], "same": [0, 0]}
    for p, r in zip(prevs, results):
        if p < 0 or not (r.ok and r.replica):
            continue
        q = results[p]
        if not (q.ok and q.replica):
            continue
        kind = "same" if q.gateway == r.gateway else "cross"
        counts[kind][1] += 1
        counts[kind][0] += q.replica == r.replica

    def frac(k):
        return counts[k][0] / counts[k][1] if counts[k][1] else None
    return {
        "first_time_prefixes": len(both),
        "first_time_same": same_first,
        "first_time_fraction": same_first / len(both) if both else None,
        "followups_cross": counts["cross"][1],
        "followups_cross_fraction": frac("cross"),
        "followups_same": counts["same"][1],
        "followups_same_fraction": frac("same"),
    }


def mirror_agreement(chains, results_a, results_b):
    """Agreement of two gateways that each got every call of a trace at the
    same moment: the fraction of calls both answered that went to the same
    replica (all), and the same over the calls whose first block no earlier
    call carried (first_time)."""
    seen = set()
    n = same = fn = fsame = 0
    for ch, a, b in zip(chains, results_a, results_b):
        new = bool(ch) and ch[0] not in seen
        if ch:
            seen.add(ch[0])
        if not (a.ok and b.ok and a.replica and b.replica):
            continue
        n += 1
        same += a.replica == b.replica
        if new:
            fn += 1
            fsame += a.replica == b.replica
    return {
        "all_calls": n,
        "all_calls_fraction": same / n if n else None,
        "first_time_prefixes": fn,
        "first_time_fraction": fsame / fn if fn else None,
    }
