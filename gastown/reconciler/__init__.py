"""The reconciler (SPEC §3): drain the town's event queue, read a snapshot, plan actions with
pure rules, apply them in one transaction, then run side effects after commit."""

from gastown.reconciler.tick import TickResult, dry_run, reconcile_town, reconcile_towns

__all__ = ["TickResult", "dry_run", "reconcile_town", "reconcile_towns"]
