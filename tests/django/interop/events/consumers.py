"""Handlers of the events role: what the Rust service sends, appended to EVENTS_OUT as JSON lines."""
import json
import os

from services_communication.consumer import (
    call_consumer, call_response_consumer, command_consumer, event_consumer, message_router)

RUST_AGGREGATE = os.environ.get('EVENTS_RUST_AGGREGATE', 'rust_book')
DJANGO_SERVICE = os.environ.get('EVENTS_DJANGO_SERVICE', 'django_sms')
DJANGO_REPLIES = os.environ.get('EVENTS_DJANGO_REPLIES', 'django_replies')


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


@message_router.consumer(DJANGO_SERVICE, 'price')
@call_consumer
def price(data, **kwargs):
    _out({'kind': 'call', 'data': data, 'call_id': kwargs.get('call_id')})
    return {'book_id': data.get('book_id'), 'unit_price': 7.5}


@message_router.consumer(DJANGO_REPLIES)
@call_response_consumer
def answer(data, service_name=None, method_name=None, call_id=None, **kwargs):
    _out({'kind': 'answer', 'data': data, 'service': service_name, 'method': method_name, 'call_id': call_id})
