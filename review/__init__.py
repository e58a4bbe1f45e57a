"""Summaries of `pulumi preview` for code review: `python3 -m review summarize --help`.

Standard library only, so a CI job can run it without the project's virtualenv.
"""
