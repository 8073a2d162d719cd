pytest_plugins = ["tests.github_fixtures", "tests.write_guard"]
