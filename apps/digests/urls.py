from django.urls import path

from apps.digests import views

app_name = "digests"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.subscription_new, name="new"),
    path("<int:pk>/", views.subscription_edit, name="edit"),
    path("<int:pk>/delete/", views.subscription_remove, name="delete"),
    path("<int:pk>/preview/", views.preview, name="preview"),
    path("<int:pk>/preview/mail/", views.preview_mail, name="preview_mail"),
    path("<int:pk>/test/", views.send_test, name="test"),
    path("<int:pk>/alerts/", views.alert_add, name="alert_add"),
    path("alerts/<int:pk>/delete/", views.alert_remove, name="alert_delete"),
    path("deliveries/<int:pk>/resend/", views.resend, name="resend"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
