"""Web pages for people under ``/ui/``: sign-in, my tokens, my activity, staff administration, policy review.

Server-rendered with Jinja; the pages call the same domain services as the JSON API and keep no rules of their own.
"""
