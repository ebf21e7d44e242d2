from django.urls import path

from bench.peer_drf.views import CheckView, HealthView

urlpatterns = [
    path("api/authz/check/", CheckView.as_view()),
    path("health", HealthView.as_view()),
]
