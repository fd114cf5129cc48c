"""Performance review pages, included under /reviews/."""

from django.urls import path

from apps.performance import views

app_name = "reviews"

urlpatterns = [
    path("", views.index, name="index"),
    path("start/", views.review_start, name="start"),
    path("<int:pk>/", views.review_detail, name="detail"),
    path("<int:pk>/acknowledge/", views.review_acknowledge, name="acknowledge"),
    path("<int:pk>/amend/", views.review_amend, name="amend"),
    path("rep/<int:user_id>/", views.rep_reviews, name="rep"),
    path("competencies/<int:team_id>/", views.competencies, name="competencies"),
]
