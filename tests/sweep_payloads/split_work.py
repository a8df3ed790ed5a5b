"""CPU-bound payload of the sweep tests: fixed work split over the ranks of the worker.

Each rank sums the squares of its share of range(WORK) and prints one JSON line, so more
ranks finish sooner while there are cores for them.
"""

import json
import os
import sys
import time

work = int(sys.argv[1]) if len(sys.argv) > 1 else 4_000_000
rank = int(os.environ["SITE_AGENT_RANK"])
# the local launcher exports the world size; under srun/mpiexec it is nodes x ranks per node
size = int(
    os.environ.get("SITE_AGENT_WORLD_SIZE")
    or int(os.environ["SITE_AGENT_NODES"]) * int(os.environ["SITE_AGENT_RANKS_PER_NODE"])
)
t0 = time.perf_counter()
total = sum(i * i for i in range(rank, work, size))
print(json.dumps({"items": len(range(rank, work, size)), "rank_seconds": time.perf_counter() - t0}))
