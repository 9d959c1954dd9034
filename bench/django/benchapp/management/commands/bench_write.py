"""The benchmark's master workload with django-cqrs: creates, an update of each (tracked
title), deletes of 10%, each write its own transaction (django-cqrs publishes after each
commit)."""
import json
import time

from django.core.management.base import BaseCommand

from benchapp.models import BenchItem


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument('--rows', type=int, required=True)

    def handle(self, *args, rows, **options):
        start = time.time()
        writes = 0
        for i in range(1, rows + 1):
            BenchItem.objects.create(
                id=i, title=f'Item {i}', price=(i % 1000) + 0.99, version=0,
                body=f'{i:08} lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore',
            )
            writes += 1
        for i in range(1, rows + 1):
            item = BenchItem.objects.get(id=i)
            item.title = f'Item {i} (revised)'
            item.version += 1
            item.save()
            writes += 1
        for i in range(1, rows + 1, 10):
            BenchItem.objects.get(id=i).delete()
            writes += 1
        seconds = time.time() - start
        self.stdout.write(json.dumps({'start_us': int(start * 1e6), 'writes': writes, 'writes_per_s': writes / seconds}))
