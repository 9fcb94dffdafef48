"""Seed the price table from the built-in catalog, so a fresh install charges list prices from the first call.

Rows that already exist are left alone: an admin's edit is never overwritten.
"""

from django.db import migrations

from chat.llm.catalog import MODELS


def seed_prices(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    for spec in MODELS:
        prices = spec.prices
        Price.objects.get_or_create(
            model=spec.id,
            defaults={
                "input": prices.input,
                "output": prices.output,
                "cache_write_5m": prices.cache_write_5m,
                "cache_write_1h": prices.cache_write_1h,
                "cache_read": prices.cache_read,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(seed_prices, migrations.RunPython.noop)]
