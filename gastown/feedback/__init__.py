"""Pull-request feedback (domain.md §4, §5): watch every PR through scm/, store what it waits
on, ask for rework once per cause, and merge it when it is really ready.

- selectors.py: which MRs are due for a check (rule R1);
- checks.py: the check itself (`check_prs`, what the task and `manage.py check_prs` run);
- observe.py: a snapshot turned into field values and the edges it crosses (pure);
- merge.py: auto-merge, with a fresh check right before the merge call.
"""
