"""Prints every CQRS model's rows as JSON: {cqrs_id: [row, ...]}, values normalised (decimals,
dates, datetimes and UUIDs as strings, foreign keys as their key)."""
import datetime
import decimal
import json
import uuid

from django.apps import apps
from django.core.management.base import BaseCommand


def plain(value):
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, memoryview)):
        return None
    return value


class Command(BaseCommand):
    help = 'Print the CQRS tables as JSON.'

    def handle(self, *args, **options):
        state = {}
        for model in apps.get_models():
            cqrs_id = getattr(model, 'CQRS_ID', None)
            if not cqrs_id:
                continue
            rows = []
            for instance in model._default_manager.order_by('pk'):
                row = {}
                for field in model._meta.concrete_fields:
                    row[field.name] = plain(field.value_from_object(instance))
                rows.append(row)
            state[cqrs_id] = rows
        self.stdout.write(json.dumps(state, sort_keys=True))
