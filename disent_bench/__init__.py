"""disent-bench: a fast, resumable benchmark suite for disentangled representation learning.

Data flows one way: dataset (``disent_bench.data``) -> model (``disent_bench.models``) ->
training (``disent_bench.train``) -> representation -> metrics (``disent_bench.metrics``) ->
results (``disent_bench.runner``) -> report (``disent_bench.report``).
"""

__version__ = "0.1.0"
