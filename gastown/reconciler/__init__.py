"""The reconciler (domain.md §3): read a snapshot, plan actions with pure rules, apply them in
one transaction, then run side effects after commit (docs/architecture.md, "Flow")."""

from gastown.reconciler.tick import TickResult, dry_run, reconcile_town, reconcile_towns

__all__ = ["TickResult", "dry_run", "reconcile_town", "reconcile_towns"]
