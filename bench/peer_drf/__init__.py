"""The peer stack: Django REST framework + django-rest-knox, one equivalent ``POST /api/authz/check/`` view."""
