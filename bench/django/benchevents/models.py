from django.db import models


class BenchEvent(models.Model):
    """What the consumer's handler writes: one row per event."""
    n = models.IntegerField(primary_key=True)
    title = models.TextField()

    class Meta:
        db_table = 'bench_events'
