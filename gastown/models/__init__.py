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
from gastown.models.intents import IntentKind, SideEffectIntent
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
    "IntentKind",
    "MergeMethod",
    "MergeMode",
    "NotificationChannel",
    "NotificationSent",
    "ReconcilerTick",
    "Rig",
    "SideEffectIntent",
    "TelemetryDay",
    "TelemetryEvent",
    "TelemetryRollup",
    "TelemetryWaitDay",
    "Town",
    "TownPermission",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
]
