from django.urls import path

from auth.accounts import apis

urlpatterns = [
    path("register", apis.UserRegisterApi.as_view(), name="register"),
    path("login", apis.UserLoginApi.as_view(), name="login"),
    path("refresh", apis.TokenRefreshApi.as_view(), name="refresh"),
    path("logout", apis.LogoutApi.as_view(), name="logout"),
    path("me", apis.UserMeApi.as_view(), name="me"),
    path("jwks.json", apis.JwksApi.as_view(), name="jwks"),
]
