"""Run the fake GitHub in the foreground (the demo points GITHUB_API_URL at it)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from scm.fake.server import FakeGitHub
from scm.fake.state import repo_options_from_json


class Command(BaseCommand):
    help = "Serve a fake GitHub (REST, GraphQL and the /_fake/ control API) on loopback."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--web-url", default="https://github.com")
        parser.add_argument(
            "--repo",
            action="append",
            default=[],
            help='Create a repository at start, e.g. octo/app or \'{"repo": "octo/app", '
            '"required_approvals": 1, "required_checks": ["ci"]}\' (repeatable).',
        )
        parser.add_argument(
            "--hook-url",
            help="Deliver every repository's webhooks here (e.g. http://127.0.0.1:8000"
            "/webhooks/github), signed with GITHUB_WEBHOOK_SECRET, as GitHub does.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        fake = FakeGitHub(host=options["host"], port=options["port"], web_url=options["web_url"])
        for spec in options["repo"]:
            data = json.loads(spec) if spec.strip().startswith("{") else {"repo": spec}
            name = data.pop("repo")
            data = repo_options_from_json(data)
            fake.create_repo(name, **data)
        fake.start()
        if options["hook_url"]:
            fake.add_hook(options["hook_url"], secret=settings.GITHUB_WEBHOOK_SECRET)
            self.stdout.write(f"Webhooks go to {options['hook_url']}.")
        self.stdout.write(
            f"Fake GitHub on {fake.url} (set GITHUB_API_URL={fake.url}); control API under "
            f"{fake.url}/_fake/. Ctrl-C to stop."
        )
        try:
            fake.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            fake.stop()
