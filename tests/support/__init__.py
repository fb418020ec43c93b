"""What several test modules share and is not a fixture: helpers, test data, fake devices, the
processes a test runs. Fixtures are in the conftest.py files; what the benchmarks need too is in
testkit/."""
