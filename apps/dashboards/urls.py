from django.urls import path

from apps.dashboards import views

app_name = "dashboards"

urlpatterns = [
    path("overview/", views.overview, name="overview"),
    path("pipeline/", views.pipeline, name="pipeline"),
    path("attainment/", views.attainment, name="attainment"),
    path("team/", views.team, name="team"),
    path("customers/", views.customers, name="customers"),
    path("records/", views.records, name="records"),
    path("changes/", views.changes, name="changes"),
    path("accounts/", views.accounts, name="accounts"),
    path("cohort/", views.cohort, name="cohort"),
    path("responses/", views.responses, name="responses"),
]
