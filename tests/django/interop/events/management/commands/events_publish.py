"""Publishes a domain event (through the package's outbox, in a transaction) and sends two
commands (immediate, as the package does): one expiring in 1 s, one in 60 s."""
import os

from django.core.management import BaseCommand
from django.db import transaction

from services_communication.call import send_call, send_command
from services_communication.publisher import publish_aggregate_event


class Command(BaseCommand):
    def handle(self, *args, **options):
        aggregate = os.environ['EVENTS_DJANGO_AGGREGATE']
        service = os.environ['EVENTS_RUST_SERVICE']
        with transaction.atomic():
            publish_aggregate_event(aggregate, 'published', {
                'book_id': 1, 'title_text': 'Dune', 'author': {'full_name': 'Frank Herbert'},
                'page_counts': [412, 896],
            })
            send_call(service, 'price', {'book_id': 1}, reply_to=os.environ['EVENTS_DJANGO_REPLIES'], timeout=60)
        send_command(service, {'phone_number': '+100', 'text': 'expired'}, command_name='send_sms', timeout=1)
        send_command(service, {'phone_number': '+200', 'text': 'hello'}, command_name='send_sms', timeout=60)
