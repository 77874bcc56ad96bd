"""Top-level pytest configuration: load the imbalance-claims plugin (options, fixtures, report)."""

pytest_plugins = ["fixtures.options", "fixtures.plugin"]
