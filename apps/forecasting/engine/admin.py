from django.contrib import admin

from apps.forecasting.engine.models import TrainedModel


@admin.register(TrainedModel)
class TrainedModelAdmin(admin.ModelAdmin):
    list_display = ("version", "as_of", "trained_at", "n_samples", "algorithm")
    search_fields = ("algorithm",)
    readonly_fields = (
        "version",
        "as_of",
        "trained_at",
        "n_samples",
        "algorithm",
        "features",
        "metrics",
    )
    exclude = ("blob",)

    def has_add_permission(self, request) -> bool:
        return False
