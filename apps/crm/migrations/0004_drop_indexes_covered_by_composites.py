"""Drop three single-column indexes that a composite index already leads with
(opp_owner_close, opp_stage_close, opphist_opp_time): they only slowed writes and imports.

Only the indexes are dropped: left to itself Django would also drop and re-add each
foreign key, which on a large table re-checks every row under an exclusive lock."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0003_alter_opportunity_opp_amount_not_negative_and_more"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    state_operations = [
        migrations.AlterField(
            model_name="opportunity",
            name="owner",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="opportunities",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="opportunity",
            name="stage",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="opportunities",
                to="crm.stage",
            ),
        ),
        migrations.AlterField(
            model_name="opportunityhistory",
            name="opportunity",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="history",
                to="crm.opportunity",
            ),
        ),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=state_operations,
            database_operations=[
                migrations.RunSQL(
                    sql=f"DROP INDEX IF EXISTS {name}",
                    reverse_sql=f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})",
                )
                for name, table, column in [
                    ("crm_opportunity_owner_id_9647aa78", "crm_opportunity", "owner_id"),
                    ("crm_opportunity_stage_id_68456214", "crm_opportunity", "stage_id"),
                    (
                        "crm_opportunityhistory_opportunity_id_b477e194",
                        "crm_opportunityhistory",
                        "opportunity_id",
                    ),
                ]
            ],
        )
    ]
