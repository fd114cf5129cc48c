from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One security-relevant action: who did what, to what, from where, when. Rows are
    only ever added; nothing in the app edits or deletes them."""

    class Action(models.TextChoices):
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login_failed", "Failed log-in"
        LOCKED_OUT = "locked_out", "Locked out"
        LOGOUT = "logout", "Logged out"
        PERMISSION_DENIED = "permission_denied", "Permission denied"
        QUOTA_CHANGED = "quota_changed", "Quota changed"
        QUOTA_PLAN = "quota_plan", "Quota plan workflow"
        REVIEW_CHANGED = "review_changed", "Review changed"
        IMPORT = "import", "Import committed"
        API_TOKEN = "api_token", "API token created"

    at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=24, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    #: Who it was, kept as text: the user may be renamed or deleted later, and a failed
    #: log-in names a user who may not exist.
    actor_username = models.CharField(max_length=150, blank=True)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=40, blank=True)
    summary = models.CharField(max_length=500)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    path = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["action", "-at"], name="audit_action_at"),
            models.Index(fields=["actor_username", "-at"], name="audit_actor_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_username or '-'} {self.action}"
