"""``python -m disent_bench``: the ``disent-bench`` command (for machines where the console script is not installed)."""

from disent_bench.cli import main

main()
