"""Lamina's testing kit: conformance suites that every adapter's tests subclass."""
