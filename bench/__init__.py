"""tether's benchmark suite: ``python -m bench [--quick] [touch expiry lateness memory]``.

Each bench module measures one promise of DESIGN.md ("The hot paths") against
``cachetools.TTLCache`` and the seeds' naive design, and states its target.
Results are printed as a table and written to ``bench/results/lifecycle.json``.
"""
