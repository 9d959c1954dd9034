"""Django masters replicated to Rust replicas: integer and UUID keys, a decimal, a date, a
datetime, a boolean, nullable fields, foreign keys, a field left out of CQRS_FIELDS, tracked
fields and a custom serializer."""
import uuid

from django.db import models

from dj_cqrs.mixins import MasterMixin


class Publisher(MasterMixin):
    CQRS_ID = 'dj_publisher'

    name = models.CharField(max_length=100)
    founded = models.DateField(null=True)
    active = models.BooleanField(default=True)


class Author(MasterMixin):
    CQRS_ID = 'dj_author'
    CQRS_FIELDS = ('id', 'name', 'publisher', 'birth_date', 'rating')
    CQRS_TRACKED_FIELDS = ('name',)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=100)
    publisher = models.ForeignKey(Publisher, null=True, on_delete=models.SET_NULL)
    birth_date = models.DateField(null=True)
    rating = models.DecimalField(max_digits=4, decimal_places=2, default=0)
    secret = models.CharField(max_length=50, default='not replicated')


class Book(MasterMixin):
    CQRS_ID = 'dj_book'
    CQRS_FIELDS = ('id', 'title', 'author', 'publisher', 'price', 'published_at', 'is_public', 'pages')
    CQRS_TRACKED_FIELDS = ('title',)

    title = models.CharField(max_length=200)
    # A plain UUID, not a ForeignKey(Author): django-cqrs 3.1.0 cannot serialize a foreign key
    # to a UUID-keyed model (ujson raises TypeError on the uuid.UUID the field returns).
    author = models.UUIDField()
    publisher = models.ForeignKey(Publisher, null=True, on_delete=models.SET_NULL)
    price = models.DecimalField(max_digits=8, decimal_places=2, null=True)
    published_at = models.DateTimeField()
    is_public = models.BooleanField(default=True)
    pages = models.IntegerField(null=True)
    cover = models.BinaryField(null=True)


class Review(MasterMixin):
    CQRS_ID = 'dj_review'
    CQRS_SERIALIZER = 'interop.master.serializers.ReviewSerializer'

    book = models.ForeignKey(Book, on_delete=models.CASCADE)
    stars = models.IntegerField()
    text = models.CharField(max_length=200)
