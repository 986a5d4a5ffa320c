"""The documented caps on integer settings, checked before anything runs.

A value past its cap is a typo or a unit mistake (``--iterations 100000000000``),
and left alone it fails late: inside ``prepare`` with an OverflowError, or as
hours of sampling. The config loader and the CLI refuse it with one line that
names the key and the cap. This module imports nothing, so the CLI can declare
its options without loading the harness.
"""

#: The largest batch size a sweep accepts (also checked against memory when planning).
MAX_BATCH_SIZE = 1 << 20
#: The most threads a benchmark may ask for: beyond any machine's cores, and intra-op pools
#: allocate per thread.
MAX_THREADS = 4096
#: The most steps a count may ask for (warm-up, fixed or minimum iterations): a billion steps
#: of the fastest kernel is hours; more is a typo.
MAX_STEPS = 10**9
#: The most queries a server run may require (``min_queries``): LoadGen's own Server minimum
#: is 270,336; a hundred million is days at any rate a benchmark uses.
MAX_QUERIES = 10**8
#: The most closed-loop clients of the concurrent scenario (one thread each).
MAX_CONCURRENCY = 4096
#: The arrival schedule's seed (``random.Random`` takes any integer; 64 bits keep records portable).
MAX_SEED = 2**64 - 1
