"""Create the company-wide default competencies (idempotent; edits made later are kept)."""

from django.db import migrations

DEFAULTS = (
    ("pipeline-discipline", "Pipeline discipline"),
    ("forecast-accuracy", "Forecast accuracy"),
    ("customer-relationships", "Customer relationships"),
    ("product-knowledge", "Product knowledge"),
    ("collaboration", "Collaboration"),
    ("coaching-development", "Coaching and development"),
)


def create_defaults(apps, schema_editor):
    Competency = apps.get_model("performance", "Competency")
    for order, (slug, name) in enumerate(DEFAULTS, start=1):
        Competency.objects.get_or_create(
            slug=slug, team=None, defaults={"name": name, "order": order}
        )


class Migration(migrations.Migration):
    dependencies = [("performance", "0002_reviewamendment")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
