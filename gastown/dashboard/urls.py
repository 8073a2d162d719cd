from django.urls import path

from gastown.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.town_list, name="towns"),
    path("towns/<slug:slug>/", views.overview, name="overview"),
    path("towns/<slug:slug>/awaiting/", views.awaiting_approval, name="awaiting"),
    path("towns/<slug:slug>/waiting/", views.waiting_on, name="waiting"),
    path("towns/<slug:slug>/convoys/", views.convoy_list, name="convoys"),
    path("towns/<slug:slug>/convoys/<int:pk>/", views.convoy_detail, name="convoy"),
    path("towns/<slug:slug>/beads/<int:pk>/", views.bead_detail, name="bead"),
    path("towns/<slug:slug>/telemetry/", views.telemetry, name="telemetry"),
    path("towns/<slug:slug>/reconciler/", views.reconciler, name="reconciler"),
    path("towns/<slug:slug>/overrides/<str:name>/", views.override, name="override_town"),
    path("towns/<slug:slug>/overrides/<str:name>/<int:pk>/", views.override, name="override"),
]
