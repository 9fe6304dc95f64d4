# SPDX-License-Identifier: Apache-2.0
"""The LLM bench's offline parts (bench/llm_workload.py, bench/llm_analysis.py):
the trace generator (determinism, shapes, distribution bounds), the prompt
block chains, the cache models, the oracle bounds on hand-made traces with
known answers (and the bound property on random ones), the per-router row and
two-gateway agreement. No processes, no network: labelled unit."""

import os
import random
import statistics
import sys
import unittest
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("INFERGW_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(SOURCE_DIR, "bench"))

import llm_analysis as la  # noqa: E402
import llm_workload as lw  # noqa: E402

SMALL = lw.TraceConfig(seed=7, calls=300, systems=8, users=40)


def rec(index, replica, code="OK", ttft=0.01, total=0.1, pu=None, hu=None, gateway=0, prev_done=None):
    return lw.CallResult(index=index, gateway=gateway, replica=replica, code=code, ttft=ttft,
                         total=total, prompt_units=pu, hit_units=hu, prev_done=prev_done)


class TraceTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.trace = lw.generate_trace(SMALL)

    def test_same_seed_same_trace(self):
        again = lw.generate_trace(SMALL)
        self.assertEqual([(c.conv, c.user, c.turn, c.prompt, c.max_tokens) for c in self.trace],
                         [(c.conv, c.user, c.turn, c.prompt, c.max_tokens) for c in again])

    def test_other_seed_other_trace(self):
        other = lw.generate_trace(lw.TraceConfig(seed=8, calls=300, systems=8, users=40))
        self.assertNotEqual([c.prompt for c in self.trace], [c.prompt for c in other])

    def test_exact_count_and_order(self):
        self.assertEqual(len(self.trace), SMALL.calls)
        self.assertEqual([c.index for c in self.trace], list(range(SMALL.calls)))

    def test_turns_extend_the_previous_prompt(self):
        by_index = {c.index: c for c in self.trace}
        followups = 0
        for c in self.trace:
            self.assertLess(c.user, SMALL.users)
            self.assertLess(c.system, SMALL.systems)
            self.assertTrue(c.prompt.startswith(b"system %d: " % c.system))
            if c.turn == 0:
                self.assertEqual(c.prev, -1)
                continue
            p = by_index[c.prev]
            self.assertLess(p.index, c.index)
            self.assertEqual((p.conv, p.user, p.turn + 1), (c.conv, c.user, c.turn))
            self.assertTrue(c.prompt.startswith(p.prompt), "turn %d does not extend turn %d" % (c.index, p.index))
            # the previous answer is in the prompt: bytes_per_token bytes per token
            self.assertGreaterEqual(len(c.prompt) - len(p.prompt),
                                    len(b"\nassistant: ") + p.max_tokens * SMALL.bytes_per_token)
            followups += 1
        self.assertGreater(followups, SMALL.calls // 3)

    def test_bounds(self):
        systems = {}
        for c in self.trace:
            self.assertGreaterEqual(c.max_tokens, SMALL.ans_min)
            self.assertLessEqual(c.max_tokens, SMALL.ans_cap)
            self.assertLessEqual(c.turn + 1, SMALL.turns_cap)
            if c.turn == 0:
                user = c.prompt[c.prompt.rindex(b"\nuser: ") + 7:]
                self.assertGreaterEqual(len(user), SMALL.user_min)
                self.assertLessEqual(len(user), SMALL.user_cap)
                systems[c.system] = c.prompt[:c.prompt.index(b"\nuser: ")]
        for s in systems.values():
            self.assertGreaterEqual(len(s), SMALL.sys_min)
            self.assertLessEqual(len(s), SMALL.sys_cap)
            self.assertNotIn(b"\nuser: ", s)

    def test_lognormal_median_and_clamp(self):
        rng = random.Random(3)
        vals = [lw.lognormal_int(rng, 200, 0.8, 10, 5000) for _ in range(4000)]
        self.assertTrue(170 <= statistics.median(vals) <= 230, statistics.median(vals))
        self.assertGreaterEqual(min(vals), 10)
        self.assertLessEqual(max(vals), 5000)
        capped = [lw.lognormal_int(rng, 200, 2.0, 50, 400) for _ in range(2000)]
        self.assertEqual((min(capped), max(capped)), (50, 400))  # long tail clamped both ways

    def test_popular_system_prompts(self):
        trace = lw.generate_trace(lw.TraceConfig(seed=1, calls=2000, systems=16, users=400))
        counts = sorted((sum(1 for c in trace if c.system == j) for j in range(16)), reverse=True)
        self.assertGreater(counts[0], 3 * max(1, counts[-1]))  # Zipf: skewed sharing

    def test_stats(self):
        st = lw.trace_stats(self.trace, 64, 128)
        self.assertEqual(st["calls"], SMALL.calls)
        self.assertEqual(st["prompt_units"], sum(len(c.prompt) for c in self.trace))
        self.assertLessEqual(st["working_set_blocks"], st["block_refs"])
        self.assertGreater(st["working_set_blocks"], 0)


class ChainTest(unittest.TestCase):

    def test_whole_blocks_capped(self):
        self.assertEqual(len(lw.block_chain(b"x" * 63, 64, 128)), 0)
        self.assertEqual(len(lw.block_chain(b"x" * 64, 64, 128)), 1)
        self.assertEqual(len(lw.block_chain(b"x" * 200, 64, 128)), 3)
        self.assertEqual(len(lw.block_chain(b"x" * 10000, 64, 4)), 4)

    def test_chained(self):
        a = lw.block_chain(b"A" * 64 + b"B" * 64 + b"C" * 64, 64, 8)
        b = lw.block_chain(b"A" * 64 + b"B" * 64 + b"D" * 64, 64, 8)
        c = lw.block_chain(b"Z" * 64 + b"B" * 64, 64, 8)
        self.assertEqual(a[:2], b[:2])
        self.assertNotEqual(a[2], b[2])
        self.assertNotEqual(a[1], c[1])  # same block, other prefix: another value
        self.assertEqual(len(set(a)), 3)


class CacheModelTest(unittest.TestCase):

    def test_lru_leading_hits_and_capacity(self):
        c = la.LRUBlocks(3)
        self.assertEqual(c.lookup(["a", "b"]), 0)
        c.admit(["a", "b"])
        self.assertEqual(c.lookup(["a", "b", "x"]), 2)
        self.assertEqual(c.lookup(["b"]), 1)
        c.admit(["c", "d"])
        self.assertEqual(len(c), 3)

    def test_touch_order(self):
        rev, fwd = la.LRUBlocks(3, "reverse"), la.LRUBlocks(3, "forward")
        for c in (rev, fwd):
            c.admit(["p", "q", "r"])
            c.admit(["x"])  # evicts the least recent block of p q r
        self.assertEqual(set(rev.d), {"p", "q", "x"})  # the tail went first
        self.assertEqual(rev.lookup(["p", "q", "r"]), 2)
        self.assertEqual(set(fwd.d), {"q", "r", "x"})  # the head went first
        self.assertEqual(fwd.lookup(["p", "q", "r"]), 0)

    def test_store_caps_and_keeps_its_own_blocks(self):
        c = la.LRUBlocks(2)
        c.admit(["a", "b", "c"])  # only the first <capacity> blocks are stored
        self.assertEqual(set(c.d), {"a", "b"})
        c = la.LRUBlocks(3)
        c.admit(["a"])
        c.admit(["z1"])
        c.admit(["z2"])  # a is now the least recent
        c.admit(["a", "b"])  # a is refreshed before b is inserted: z1 goes
        self.assertEqual(set(c.d), {"z2", "a", "b"})
        self.assertEqual(c.lookup(["a", "b"]), 2)

    def test_min_bound_known_answers(self):
        # a b a b with one slot: b bypasses (a is needed sooner); then a hits.
        self.assertEqual(la.min_bound([["a"], ["b"], ["a"], ["b"]], 1), [0, 0, 1, 0])
        self.assertEqual(la.min_bound([["a"], ["b"], ["a"], ["b"]], 2), [0, 0, 1, 1])
        self.assertEqual(la.min_bound([["a"], ["b"], ["a"], ["b"]], 0), [0, 0, 0, 0])
        # a b c a b c with two slots: MIN keeps a and b, c bypasses: 2 hits.
        self.assertEqual(la.min_bound([["a"], ["b"], ["c"], ["a"], ["b"], ["c"]], 2),
                         [0, 0, 0, 1, 1, 0])
        # counts any present block, not only leading ones
        self.assertEqual(la.min_bound([["x", "y"], ["z", "y"]], 4), [0, 1])

    def test_compulsory(self):
        self.assertEqual(la.compulsory_bound([["a", "b"], ["a", "c"], ["c", "b", "d"]]), [0, 1, 2])

    def test_greedy_reference_follows_the_cache(self):
        chains = [["s1", "u1"], ["t1"], ["s1", "u2"], ["t1", "v"]]
        hits, picks = la.greedy_reference(chains, 2, 10, cap_factor=2.0)
        self.assertEqual(picks[0], 0)
        self.assertEqual(picks[1], 1)  # nothing matches: fewest calls
        self.assertEqual((picks[2], hits[2]), (0, 1))
        self.assertEqual((picks[3], hits[3]), (1, 1))

    def test_greedy_reference_load_cap(self):
        chains = [["s"]] * 8  # all want replica 0; the cap spreads them
        hits, picks = la.greedy_reference(chains, 2, 10, cap_factor=1.0)
        self.assertEqual(sorted(picks.count(r) for r in range(2)), [4, 4])

    def test_fixed_assignment(self):
        chains = [["a", "b"], ["a", "b"], ["a", "c"]]
        self.assertEqual(la.lru_fixed_assignment(chains, [0, 1, 0], 2, 10), [0, 0, 1])

    def test_min_bound_bounds_every_router(self):
        """On random traces of shared prefixes: MIN with all the capacity in one
        cache >= the greedy reference and >= random assignments; compulsory
        >= MIN."""
        for seed in range(25):
            rng = random.Random(seed)
            heads = [["h%d.%d" % (j, i) for i in range(rng.randint(1, 5))] for j in range(4)]
            chains = []
            for n in range(60):
                h = heads[rng.randrange(4)]
                chains.append(h + ["t%d.%d.%d" % (seed, n, i) for i in range(rng.randint(0, 3))])
                if rng.random() < 0.3:
                    chains.append(list(chains[-1]))
            for replicas, k in ((2, 3), (4, 2), (3, 6)):
                bound = sum(la.min_bound(chains, replicas * k))
                self.assertLessEqual(bound, sum(la.compulsory_bound(chains)))
                for touch in ("reverse", "forward"):
                    self.assertLessEqual(sum(la.greedy_reference(chains, replicas, k, touch_order=touch)[0]), bound)
                    for _ in range(5):
                        picks = [rng.randrange(replicas) for _ in chains]
                        self.assertLessEqual(sum(la.lru_fixed_assignment(chains, picks, replicas, k, touch)),
                                             bound)

    def test_oracle_rows(self):
        chains = [["a", "b"], ["a", "b"], ["a", "c"]]
        o = la.oracle_rows(chains, [128, 128, 128], 64, 1, 10)
        self.assertAlmostEqual(o["compulsory_bound"], (2 + 1) * 64 / 384)
        self.assertAlmostEqual(o["min_bound"], o["compulsory_bound"])
        self.assertAlmostEqual(o["greedy_reference"], o["compulsory_bound"])
        self.assertEqual(o["greedy_max_mean_load"], 1.0)


class RowTest(unittest.TestCase):

    def test_router_row(self):
        results = [rec(0, "r0", ttft=0.010, total=0.1, pu=1000, hu=0),
                   rec(1, "r0", ttft=0.002, total=0.2, pu=1000, hu=640, prev_done=True),
                   rec(2, "r1", ttft=0.004, total=0.3, pu=2000, hu=1280, prev_done=False),
                   rec(3, "r1", code="UNAVAILABLE", ttft=None, total=0.01),
                   rec(4, None, code="NOT_STARTED", ttft=None, total=None)]
        row = la.router_row(results, ["r0", "r1", "r2", "r3"], [-1, 0, 1, 2, 3])
        self.assertEqual((row["calls"], row["ok"], row["failed"], row["not_started"]), (5, 3, 1, 1))
        self.assertAlmostEqual(row["hit_ratio"], 1920 / 4000)
        self.assertEqual(row["ttft_p50"], 0.004)
        self.assertEqual(row["ttft_p99"], 0.010)
        self.assertEqual(row["total_p99"], 0.3)
        self.assertEqual(row["load"], {"r0": 2, "r1": 1, "r2": 0, "r3": 0})
        self.assertAlmostEqual(row["max_mean_load"], 2 / 0.75)
        self.assertEqual(row["turns_sent_before_previous_done"], 1)
        # follow-ups: 1 (prev 0: r0 = r0), 2 (prev 1: r0 != r1); 3 and 4 failed
        self.assertEqual((row["followups"], row["followups_sticky"]), (2, 0.5))

    def test_no_trailers_no_ratio(self):
        row = la.router_row([rec(0, "r0"), rec(1, "r1")], ["r0", "r1"])
        self.assertIsNone(row["hit_ratio"])
        self.assertEqual(row["max_mean_load"], 1.0)
        text = la.table([("ring", row), ("prefix-precise", "not available (unknown tunable)")],
                        {"min_bound": 0.5, "compulsory_bound": 0.6, "greedy_reference": 0.45,
                         "greedy_max_mean_load": 1.1})
        self.assertIn("| ring | 2/0/0 | n/a (no x-kv trailers) |", text)
        self.assertIn("| prefix-precise | not available (unknown tunable) |", text)
        self.assertIn("| 50.0% | 100% |", text)
        self.assertIn("| 45.0% | 90% |", text)

    def test_table_ratio_to_least_loaded(self):
        a = la.router_row([rec(0, "r0", ttft=0.004, pu=100, hu=50)], ["r0"])
        b = la.router_row([rec(0, "r0", ttft=0.010, pu=100, hu=0)], ["r0"])
        text = la.table([("prefix-estimate", a), ("least_loaded", b)],
                        {"min_bound": 0.8, "compulsory_bound": 0.9, "greedy_reference": 0.7,
                         "greedy_max_mean_load": 1.0})
        self.assertIn("| prefix-estimate | 1/0/0 | 50.0% | 62% | 4.0 | 4.0 | 100.0 | 1.00 | 0.40 |", text)

    def test_replay_follows_the_send_order(self):
        chains = [["a", "b"], ["a", "b"], ["a", "c"], ["a", "b"]]
        units = [128, 128, 128, 128]
        results = [rec(0, "r0"), rec(1, "r1"), rec(2, "r1"), rec(3, "r0", code="UNAVAILABLE")]
        for i, r in enumerate(results):
            r.sent = float(i)
        results[1].sent = 5.0  # sent last: r1 sees a,c first, then a,b hits 1
        # replayed: 0 (r0) a,b miss; 2 (r1) a,c miss; 1 (r1) a,b: 1 hit; the failed call is left out
        self.assertAlmostEqual(la.replay_hit_ratio(chains, units, results, ["r0", "r1"], 10, 64),
                               64 / 384)
        self.assertIsNone(la.replay_hit_ratio(chains, units, results, ["x"], 10, 64))

    def test_percentile(self):
        self.assertIsNone(la.percentile([], 0.5))
        self.assertEqual(la.percentile(list(range(1, 101)), 0.99), 99)
        self.assertEqual(la.percentile([5], 0.99), 5)


class AgreementTest(unittest.TestCase):

    def test_split(self):
        chains = [["s1", "a"], ["s1", "b"],   # s1 first seen by g0 (r0) and g1 (r0): agree
                  ["s2", "c"], ["s2", "d"],   # s2: g0 r1, g1 r2: disagree
                  ["s1", "a", "x"],           # follow-up of 0, other gateway, same replica
                  ["s2", "c", "y"],           # follow-up of 2, other gateway, other replica
                  ["s1", "b", "z"],           # follow-up of 1, same gateway, same replica
                  ["s1", "a", "x", "w"]]      # follow-up of 4, failed: left out
        prevs = [-1, -1, -1, -1, 0, 2, 1, 4]
        results = [rec(0, "r0", gateway=0), rec(1, "r0", gateway=1),
                   rec(2, "r1", gateway=0), rec(3, "r2", gateway=1),
                   rec(4, "r0", gateway=1), rec(5, "r2", gateway=1),
                   rec(6, "r0", gateway=1), rec(7, None, code="UNAVAILABLE", gateway=0)]
        a = la.agreement(chains, prevs, results)
        self.assertEqual((a["first_time_prefixes"], a["first_time_same"]), (2, 1))
        self.assertEqual(a["first_time_fraction"], 0.5)
        self.assertEqual((a["followups_cross"], a["followups_cross_fraction"]), (2, 0.5))
        self.assertEqual((a["followups_same"], a["followups_same_fraction"]), (1, 1.0))

    def test_failed_calls_ignored(self):
        a = la.agreement([["s"], ["s"]], [-1, 0],
                         [rec(0, "r0", gateway=0), rec(1, None, code="UNAVAILABLE", gateway=1)])
        self.assertEqual((a["first_time_prefixes"], a["followups_cross"]), (0, 0))
        self.assertIsNone(a["first_time_fraction"])

    def test_mirror(self):
        chains = [["s1", "a"], ["s1", "b"], ["s2", "c"], ["s2", "d"], []]
        a = [rec(0, "r0"), rec(1, "r0"), rec(2, "r1"), rec(3, "r1"), rec(4, "r3")]
        b = [rec(0, "r0"), rec(1, "r2"), rec(2, "r1"), rec(3, None, code="UNAVAILABLE"), rec(4, "r3")]
        m = la.mirror_agreement(chains, a, b)
        self.assertEqual((m["all_calls"], m["all_calls_fraction"]), (4, 0.75))
        self.assertEqual((m["first_time_prefixes"], m["first_time_fraction"]), (2, 1.0))


if __name__ == "__main__":
    unittest.main()
