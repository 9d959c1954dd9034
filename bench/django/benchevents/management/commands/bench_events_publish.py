"""The events workload: N domain events, each published in its own transaction (through the
package's outbox table; its runpublisher sends them)."""
import json
import time

from django.core.management.base import BaseCommand
from django.db import transaction

from services_communication.publisher import publish_aggregate_event


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument('--events', type=int, required=True)

    def handle(self, *args, events, **options):
        start = time.time()
        for n in range(1, events + 1):
            with transaction.atomic():
                publish_aggregate_event('bench_order', 'happened', {'n': n, 'title': f'Order {n} paid'})
        seconds = time.time() - start
        self.stdout.write(json.dumps({'start_us': int(start * 1e6), 'events': events, 'events_per_s': events / seconds}))
