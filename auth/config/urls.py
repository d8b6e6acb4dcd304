from django.urls import include, path

from auth.core import asyncapi, docs, health
from auth.core.metrics import metrics_view

urlpatterns = [
    path("auth/", include("auth.accounts.urls")),
    path("health", health.health),
    path("ready", health.ready),
    path("metrics", metrics_view),
    path("asyncapi.json", asyncapi.asyncapi_json),
    path("asyncapi.yaml", asyncapi.asyncapi_yaml),
    path("asyncapi", asyncapi.asyncapi_page),
    path("openapi.json", docs.openapi_json),
    path("docs", docs.swagger_ui),
    path("_assets/<path:path>", docs.asset),
]

handler400 = "auth.core.problems.bad_request"
handler403 = "auth.core.problems.permission_denied"
handler404 = "auth.core.problems.not_found"
handler500 = "auth.core.problems.server_error"
