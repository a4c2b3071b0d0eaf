#!/usr/bin/env python3
"""Maglev's disruption with ideal permutations, as a yardstick for the mh test.

Populates a 65537-entry Maglev table for 1000 servers whose (offset, skip)
are uniformly random instead of IPVS's hsiphash ones, removes every 100th
server, populates again and prints how many entries changed server. If
these figures match vrlb's (BENCHMARKS.md, "mh disruption"), the disruption
belongs to the population algorithm, not to IPVS's hash or vrlb's order.

Usage: maglev_disruption_model.py [SEEDS]   (default 5; a few seconds each)
"""
import random
import sys

M = 65537
SERVERS = 1000


def populate(servers, perms):
    table = [-1] * M
    next_at = {s: 0 for s in servers}
    filled = 0
    while True:
        for s in servers:
            offset, skip = perms[s]
            while True:
                c = (offset + next_at[s] * skip) % M
                next_at[s] += 1
                if table[c] < 0:
                    break
            table[c] = s
            filled += 1
            if filled == M:
                return table


def main():
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for seed in range(seeds):
        r = random.Random(seed)
        perms = {s: (r.randrange(M), r.randrange(1, M)) for s in range(SERVERS)}
        before = populate(list(range(SERVERS)), perms)
        gone = set(range(0, SERVERS, 100))
        after = populate([s for s in range(SERVERS) if s not in gone], perms)
        moved = sum(1 for a, b in zip(before, after) if a != b)
        survivors = sum(1 for a, b in zip(before, after) if a != b and a not in gone)
        print(f"seed {seed}: {moved / M:.2%} of entries moved, {survivors / M:.2%} from surviving servers")


if __name__ == "__main__":
    main()
