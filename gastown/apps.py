from django.apps import AppConfig


class GastownConfig(AppConfig):
    name = "gastown"
    verbose_name = "Gas Town"
