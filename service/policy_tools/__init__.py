"""Authoring and review tools for the policy: check, test, explain, matrix, diff, their CLI and rendering.

They ask the engine (``service.policy``) the same questions the service does; the engine imports none of them.
"""
