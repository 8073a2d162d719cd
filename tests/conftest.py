pytest_plugins = ["tests.github_fixtures"]
