from django.urls import path

from gastown.api import schema, views

app_name = "api"

urlpatterns = [
    path("openapi.json", schema.openapi_json, name="openapi"),
    path("docs", schema.docs, name="docs"),
    path("beads", views.beads_create, name="beads"),
    path("convoys", views.convoys_create, name="convoys"),
    path("agents/<str:name>/assignment", views.agent_assignment, name="agent-assignment"),
    path("agents/<str:name>/heartbeat", views.agent_heartbeat_view, name="agent-heartbeat"),
    path("agents/<str:name>/done", views.agent_done, name="agent-done"),
    path("agents/<str:name>/failure", views.agent_failure, name="agent-failure"),
    path("agents/<str:name>/review", views.agent_review, name="agent-review"),
    path("awaiting-approval", views.awaiting_approval, name="awaiting-approval"),
]
