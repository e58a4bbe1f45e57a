"""`python3 -m bench`: measure what users of the cluster feel, on a lab cluster of its own.

Entry point: `./run bench [--runs N] [--quick] [--json OUT] [--markdown OUT]` (see cli.py).
"""
