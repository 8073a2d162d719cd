from gastown.models.agents import Agent, AgentRole, AgentStatus
from gastown.models.api import ApiToken, WebhookDelivery, WebhookDeliveryStatus
from gastown.models.convoys import Convoy, ConvoyStatus
from gastown.models.events import (
    FeedbackCheckRun,
    ReconcilerTick,
    TelemetryDay,
    TelemetryEvent,
    TelemetryRollup,
    TelemetryWaitDay,
)
from gastown.models.notifications import NotificationChannel, NotificationSent
from gastown.models.towns import (
    EffectiveSettings,
    MergeMethod,
    MergeMode,
    Rig,
    Town,
    TownPermission,
)

__all__ = [
    "Agent",
    "AgentRole",
    "AgentStatus",
    "ApiToken",
    "Convoy",
    "ConvoyStatus",
    "EffectiveSettings",
    "FeedbackCheckRun",
    "MergeMethod",
    "MergeMode",
    "NotificationChannel",
    "NotificationSent",
    "ReconcilerTick",
    "Rig",
    "TelemetryDay",
    "TelemetryEvent",
    "TelemetryRollup",
    "TelemetryWaitDay",
    "Town",
    "TownPermission",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
]
