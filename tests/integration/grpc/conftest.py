"""Fixtures for the gRPC tests (defined in env.py, which the tests also import helpers from)."""

from tests.integration.grpc.env import material, running

__all__ = ["material", "running"]
