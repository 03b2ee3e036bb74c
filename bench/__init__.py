"""On-demand benchmarks (`make bench`): every figure a ratio or a pair from one run."""
