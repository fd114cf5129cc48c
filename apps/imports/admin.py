from django.contrib import admin

from apps.imports.models import ImportJob, SavedMapping


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "file_name",
        "status",
        "row_count",
        "created",
        "updated",
        "unchanged",
        "error_count",
        "uploaded_by",
        "created_at",
    )
    list_filter = ("kind", "status")
    search_fields = ("file_name",)
    readonly_fields = ("created_at", "finished_at", "task_id")
    exclude = ("file_data",)


@admin.register(SavedMapping)
class SavedMappingAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "owner", "updated_at")
    list_filter = ("kind",)
    search_fields = ("name",)
