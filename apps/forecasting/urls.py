from django.urls import path

from apps.forecasting import views

app_name = "forecasting"

urlpatterns = [
    path("", views.index, name="index"),
    path("calls/", views.call_submit, name="call_submit"),
    path("deals/<int:pk>/category/", views.deal_category, name="deal_category"),
    path("scenarios/", views.scenario_save, name="scenario_save"),
    path("scenarios/<int:pk>/delete/", views.scenario_delete, name="scenario_delete"),
    path("api/forecasts/", views.api_forecasts, name="api_forecasts"),
    path("api/calls/", views.api_calls, name="api_calls"),
    path("api/accuracy/", views.api_accuracy, name="api_accuracy"),
]
