pytest_plugins = ["tests.db_fixtures", "tests.berth_fixtures"]
