"""Support code for the template's tests and benchmarks: rendering, the app environment, running apps, clients."""
