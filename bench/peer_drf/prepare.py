"""``python -m bench.peer_drf.prepare``: migrate ``$PEER_DRF_DB`` and print a knox token and the user id."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peer_drf.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from knox.models import AuthToken  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
user = get_user_model().objects.create_user("bench-owner", password=None)
_, token = AuthToken.objects.create(user)
print(f"{token} {user.id}")
