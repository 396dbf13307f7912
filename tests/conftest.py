"""Root test configuration: shared fixtures live in tests/fixtures as plugins."""

pytest_plugins = [
    "tests.fixtures.servicebus_emulator",
    "tests.fixtures.azurite",
    "tests.fixtures.tracing",
]
