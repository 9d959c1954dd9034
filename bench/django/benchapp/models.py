from django.db import models

from dj_cqrs.mixins import MasterMixin, ReplicaMixin


class BenchItem(MasterMixin):
    CQRS_ID = 'bench_item'
    CQRS_TRACKED_FIELDS = ('title',)

    id = models.IntegerField(primary_key=True)
    title = models.CharField(max_length=200)
    body = models.TextField()
    price = models.FloatField()
    version = models.IntegerField(default=0)

    class Meta:
        db_table = 'bench_django_items'


class BenchItemRef(ReplicaMixin):
    CQRS_ID = 'bench_item'

    id = models.IntegerField(primary_key=True)
    title = models.CharField(max_length=200)
    body = models.TextField()
    price = models.FloatField()
    version = models.IntegerField(default=0)

    class Meta:
        db_table = 'bench_django_item_refs'
