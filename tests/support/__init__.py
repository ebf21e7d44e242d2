"""Helpers and factories of the test suite; conftest modules only define fixtures and import from here.

- ``app``: settings, throwaway databases, the app's lifespan and an in-process HTTP client
- ``factories``: users, keys, entities and role assignments made through the domain services
- ``world``: the shared test world (an entity tree, staff, an owner, a bound PAT) built from the factories
- ``pats``, ``authz``, ``ui``: HTTP helpers of those areas
- ``services``: helpers of the service-level tests (a caller's principal, a refused call's field errors, events)
- ``security``: the security suite's counters and its Hypothesis harness
- ``live_server``, ``workers``, ``served``: a server on a real port, a second worker over the same database,
  ``tokengate run`` in a subprocess
- ``receiver``: a webhook receiver on a real port
"""
