from django.apps import AppConfig


class ScmConfig(AppConfig):
    name = "scm"
    verbose_name = "GitHub"
