from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        # Log-ins, log-outs, failures and lockouts are announced by Django and django-axes
        # as signals; the receivers turn each into one audit event.
        from apps.audit import receivers

        receivers.connect()
