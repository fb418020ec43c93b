"""What the tests (tests/) and the benchmarks and evaluations (bench/) both need: the real services
they start, the simulated bus traces and water histories they score against, the reference and
baseline detectors they compare with, and the paths of the repository's data. Not shipped: neither
tests/ nor bench/ imports the other, both import this."""
