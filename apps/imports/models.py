"""Import runs and saved column/value mappings."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.imports.schema import KIND_CHOICES


class ImportJob(models.Model):
    """One file imported (or being imported) through the wizard or the Celery path.

    The uploaded bytes are kept on the row (``file_data``) so that a worker on another
    machine can read them without shared disk; they are cleared once the job is committed.
    ``errors`` holds at most :data:`apps.imports.services.MAX_STORED_ERRORS` errors;
    ``error_count`` is the full number.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        QUEUED = "queued", "Queued"
        VALIDATING = "validating", "Validating"
        FAILED = "failed", "Failed"
        COMMITTED = "committed", "Committed"

    kind = models.CharField(max_length=32, choices=KIND_CHOICES)
    file_name = models.CharField(max_length=255)
    file_type = models.CharField(max_length=8, blank=True)
    file_size = models.BigIntegerField(default=0)
    file_data = models.BinaryField(blank=True, default=b"", editable=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    mapping = models.JSONField(default=dict, blank=True)
    headers = models.JSONField(default=list, blank=True)
    row_count = models.IntegerField(default=0)
    created = models.IntegerField(default=0)
    updated = models.IntegerField(default=0)
    unchanged = models.IntegerField(default=0)
    error_count = models.IntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done (0-100).")
    task_id = models.CharField(max_length=64, blank=True)
    #: The dry run of a large file, made by a task (``preview_mapping`` is the mapping it
    #: used, so a changed mapping makes it stale).
    preview_report = models.JSONField(default=dict, blank=True)
    preview_mapping = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    #: When the job was last handed to the task queue (commit, or a recovery re-queue).
    queued_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"], name="importjob_status_created")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} from {self.file_name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.FAILED, self.Status.COMMITTED)


class SavedMapping(models.Model):
    """A reusable mapping document (see apps.imports.mapping) for one kind."""

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=32, choices=KIND_CHOICES)
    document = models.JSONField(default=dict)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="uniq_saved_mapping_kind_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"
