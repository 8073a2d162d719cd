"""A URLconf with a view that fails, to check the 500 page (DEBUG off)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("kaboom")


urlpatterns = [path("boom/", boom)]
