from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "auth.accounts"
    label = "accounts"  # django.contrib.auth already owns the label "auth"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auth.core import openapi  # noqa: F401  (registers the OpenAPI extensions)
