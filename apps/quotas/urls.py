"""Quota planning pages, included under /quotas/."""

from django.urls import path

from apps.quotas import views

app_name = "quotas"

_PLAN = "plan/<int:team_id>/<str:period>/"

urlpatterns = [
    path("", views.index, name="index"),
    path(_PLAN, views.plan, name="plan"),
    path(_PLAN + "submit/", views.plan_submit, name="submit"),
    path(_PLAN + "approve/", views.plan_approve, name="approve"),
    path(_PLAN + "return/", views.plan_return, name="return"),
    path(_PLAN + "lock/", views.plan_lock, name="lock"),
    path(_PLAN + "copy/", views.plan_copy, name="copy"),
    path(_PLAN + "spread/", views.plan_spread, name="spread"),
    path(_PLAN + "upload/", views.plan_upload, name="upload"),
    path(_PLAN + "template.csv", views.plan_template, name="template"),
    path(_PLAN + "export/<slug:file_format>/", views.plan_export, name="export"),
]
