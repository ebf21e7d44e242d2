"""ASGI entry point: ``uvicorn bench.peer_drf.asgi:application``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peer_drf.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()
