"""Django replicas of the Rust masters."""
import os

from django.db import models

from dj_cqrs.mixins import ReplicaMixin


class RsAuthor(ReplicaMixin):
    CQRS_ID = 'rs_author'

    id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=100)


class RsBook(ReplicaMixin):
    CQRS_ID = 'rs_book'

    id = models.IntegerField(primary_key=True)
    title = models.CharField(max_length=200)
    author = models.UUIDField(null=True)
    price = models.DecimalField(max_digits=8, decimal_places=2, null=True)
    released = models.DateField(null=True)
    in_stock = models.BooleanField(default=True)

    @classmethod
    def cqrs_create(cls, sync, mapped_data, previous_data=None, meta=None):
        # The dead-letter test: refuse flagged titles while the flag file exists.
        flag = os.environ.get('INTEROP_REJECT_FILE')
        if flag and os.path.exists(flag) and mapped_data.get('title', '').startswith('REJECT'):
            raise ValueError('rejected by the test flag')
        return super().cqrs_create(sync, mapped_data, previous_data=previous_data, meta=meta)
