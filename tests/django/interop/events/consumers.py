"""Handlers of the events role: what the Rust service sends, appended to EVENTS_OUT as JSON lines."""
import json
import os

from services_communication.consumer import command_consumer, event_consumer, message_router

RUST_AGGREGATE = os.environ.get('EVENTS_RUST_AGGREGATE', 'rust_book')
DJANGO_SERVICE = os.environ.get('EVENTS_DJANGO_SERVICE', 'django_sms')


def _out(record):
    with open(os.environ['EVENTS_OUT'], 'a') as f:
        f.write(json.dumps(record) + '\n')


@message_router.consumer(RUST_AGGREGATE, 'published')
@event_consumer
def book_published(payload, **kwargs):
    _out({'kind': 'event', 'payload': payload, 'event_id': kwargs.get('event_id'),
          'aggregate': kwargs.get('aggregate'), 'event_type': kwargs.get('event_type')})


@message_router.consumer(DJANGO_SERVICE, 'send_sms')
@command_consumer
def send_sms(routing_key, body, **kwargs):
    _out({'kind': 'command', 'name': routing_key, 'arguments': body})
