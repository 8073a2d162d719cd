from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo: simulated agents, the fake-GitHub approval and `manage.py seed_demo`.

    Installed only when GASTOWN_DEMO (or GASTOWN_SIMULATED_AGENTS) is on; it plugs itself into
    the dispatch port and the override catalogue, so production code never imports the fake
    GitHub (an import-linter contract checks it)."""

    name = "gastown.demo"
    label = "gastown_demo"
    verbose_name = "gastown demo"

    def ready(self) -> None:
        from gastown.demo.overrides import FAKE_PR_APPROVE
        from gastown.demo.simulation import simulate_dispatch
        from gastown.services.dispatch import dispatch_register_local_agents
        from gastown.services.overrides import override_register

        override_register(FAKE_PR_APPROVE)
        dispatch_register_local_agents(simulate_dispatch)
