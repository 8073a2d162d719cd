import pytest

pytest_plugins = ["tests.github_fixtures", "tests.processes", "tests.write_guard"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked `broker("orm")` or `broker("redis")` runs only on that Q_BROKER (.ci/run
    runs the queue tests on both); on the other it is deselected, not skipped."""
    from django.conf import settings

    other = [
        item
        for item in items
        if (marker := item.get_closest_marker("broker")) and marker.args[0] != settings.Q_BROKER
    ]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if item not in other]
