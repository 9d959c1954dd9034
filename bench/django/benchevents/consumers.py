"""The benchmark's event handler: one row per event, in the handler's transaction."""
from django.db import transaction

from services_communication.consumer import event_consumer, message_router

from benchevents.models import BenchEvent


@message_router.consumer('bench_order', 'happened')
@event_consumer
def happened(payload, **kwargs):
    with transaction.atomic():
        BenchEvent.objects.create(n=payload['n'], title=payload['title'])
