#!/usr/bin/env python
"""A small Django project running django-cqrs, for the interoperability tests.

INTEROP_ROLE=master runs the master app (its models publish), INTEROP_ROLE=replica the replica
app (its models consume). INTEROP_DB, AMQP_URL, CQRS_EXCHANGE and CQRS_QUEUE configure it.
"""
import os
import sys

if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'interop.settings')
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
