"""Import wizard routes, included under /imports/ by the project urls."""

from django.urls import path

from apps.imports import views

app_name = "imports"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:pk>/columns/", views.columns, name="columns"),
    path("<int:pk>/values/", views.values, name="values"),
    path("<int:pk>/preview/", views.preview, name="preview"),
    path("<int:pk>/", views.job_detail, name="job"),
    path("<int:pk>/progress/", views.job_progress, name="progress"),
    path("<int:pk>/errors.csv", views.job_errors_csv, name="errors-csv"),
    path("<int:pk>/mapping.json", views.job_mapping_download, name="job-mapping"),
    path("mappings/<int:pk>/download/", views.mapping_download, name="mapping-download"),
]
