from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from gastown.health import healthz, readyz
from gastown.metrics import metrics
from gastown.webhooks import github_webhook

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("gastown.api.urls")),
    path("webhooks/github", github_webhook, name="github-webhook"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("", include("gastown.dashboard.urls")),
]
