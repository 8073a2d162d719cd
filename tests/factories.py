from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from beads.models import (
    Bead,
    BeadDependency,
    BeadEvent,
    BeadStatus,
    BeadType,
    DependencyKind,
    MergeRequest,
)
from gastown.models import (
    Agent,
    AgentRole,
    Convoy,
    FeedbackCheckRun,
    MergeMode,
    ReconcilerTick,
    Rig,
    TelemetryEvent,
    Town,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"group{n}")


class TownFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Town
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"town-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.replace("-", " ").title())


class RigFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rig

    town = factory.SubFactory(TownFactory)
    name = factory.Sequence(lambda n: f"rig-{n}")
    repo = factory.Sequence(lambda n: f"acme/repo-{n}")
    default_branch = "main"


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent

    town = factory.SubFactory(TownFactory)
    rig = factory.SubFactory(RigFactory, town=factory.SelfAttribute("..town"))
    role = AgentRole.POLECAT
    name = factory.Sequence(lambda n: f"polecat-{n}")


class ConvoyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Convoy

    town = factory.SubFactory(TownFactory)
    rig = factory.SubFactory(RigFactory, town=factory.SelfAttribute("..town"))
    title = factory.Sequence(lambda n: f"Convoy {n}")
    merge_mode = MergeMode.REVIEW_THEN_LAND
    feature_branch = factory.Sequence(lambda n: f"convoy/feature-{n}")


class BeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bead

    town = factory.SubFactory(TownFactory)
    rig = factory.SubFactory(RigFactory, town=factory.SelfAttribute("..town"))
    type = BeadType.ISSUE
    status = BeadStatus.OPEN
    title = factory.Sequence(lambda n: f"Bead {n}")
    created_by = "test"


class MergeRequestBeadFactory(BeadFactory):
    type = BeadType.MERGE_REQUEST
    status = BeadStatus.OPEN


class MergeRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MergeRequest

    bead = factory.SubFactory(MergeRequestBeadFactory)
    branch = factory.Sequence(lambda n: f"polecat/work-{n}")
    target_branch = "main"
    pr_url = ""


class BeadDependencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BeadDependency

    bead = factory.SubFactory(BeadFactory)
    depends_on = factory.SubFactory(BeadFactory, town=factory.SelfAttribute("..bead.town"))
    kind = DependencyKind.BLOCKS


class BeadEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BeadEvent

    bead = factory.SubFactory(BeadFactory)
    bead_ref = factory.SelfAttribute("bead.pk")
    bead_title = factory.SelfAttribute("bead.title")
    town = factory.SelfAttribute("bead.town")
    kind = "note"
    actor = "test"


class TelemetryEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TelemetryEvent

    town = factory.SubFactory(TownFactory)
    name = "pr.awaiting_approval_detected"


class ReconcilerTickFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReconcilerTick

    town = factory.SubFactory(TownFactory)
    started_at = factory.Faker("date_time_this_month", tzinfo=__import__("datetime").UTC)
    duration_ms = 12


class FeedbackCheckRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FeedbackCheckRun

    town = factory.SubFactory(TownFactory)
    started_at = factory.LazyFunction(timezone.now)
    token = "GITHUB_TOKEN"
