"""The Django master's scenario: creates, updates, deletes, a broadcast sync, a direct sync to
the Rust replica's queue, bulk create and bulk update."""
import datetime
import decimal
import uuid

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from interop.master.models import Author, Book, Publisher, Review


class Command(BaseCommand):
    help = 'Play the interoperability scenario as a django-cqrs master.'

    def add_arguments(self, parser):
        parser.add_argument('--direct-queue', required=True)
        parser.add_argument('--reject-publisher', action='store_true')

    def handle(self, *args, **options):
        if options['reject_publisher']:
            Publisher.objects.create(name='REJECT me', founded=datetime.date(2000, 1, 1))
            return
        now = timezone.now()
        ace = Publisher.objects.create(name='Ace Books', founded=datetime.date(1952, 1, 1))
        gollancz = Publisher.objects.create(name='Gollancz', founded=None, active=False)
        defunct = Publisher.objects.create(name='Defunct Press', founded=datetime.date(1990, 5, 17))
        herbert = Author.objects.create(
            id=uuid.UUID('6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f'), name='Frank Herbert', publisher=ace,
            birth_date=datetime.date(1920, 10, 8), rating=decimal.Decimal('4.25'), secret='s1',
        )
        lem = Author.objects.create(name='Stanisław Lem', publisher=gollancz, rating=decimal.Decimal('4.5'))
        le_guin = Author.objects.create(name='Ursula K. Le Guin', publisher=None, birth_date=datetime.date(1929, 10, 21))
        books = []
        for i, (title, author, price) in enumerate([
            ('Dune', herbert, '9.99'), ('Dune Messiah', herbert, '12.00'), ('Solaris', lem, None),
            ('The Cyberiad', lem, '7.50'), ('The Left Hand of Darkness', le_guin, '12.00'),
            ('The Dispossessed', le_guin, '8.99'), ('His Master\'s Voice', lem, '0.99'),
        ]):
            books.append(Book.objects.create(
                title=title, author=author.id, publisher=author.publisher,
                price=decimal.Decimal(price) if price else None,
                published_at=now - datetime.timedelta(days=365 * i, microseconds=i),
                is_public=i % 3 != 2, pages=100 + i if i % 2 else None, cover=b'\x00\x01',
            ))
        for i, book in enumerate(books[:3]):
            Review.objects.create(book=book, stars=3 + i % 3, text=f'review {i} of {book.title}')
        # updates: a tracked field, other fields, a transaction with two saves of one row
        books[0].title = 'Dune (Deluxe Edition)'
        books[0].save()
        books[1].price = decimal.Decimal('13.50')
        books[1].save()
        with transaction.atomic():
            lem.name = 'Stanislaw Lem'
            lem.save()
            lem.rating = decimal.Decimal('4.75')
            lem.save()
        herbert.publisher = None
        herbert.save()
        # partial saves: without update_cqrs_fields the revision stays (replicas log a
        # duplicate), with it the revision moves
        books[3].pages = 321
        books[3].save(update_fields=['pages'], update_cqrs_fields=False)
        books[3].pages = 322
        books[3].save(update_fields=['pages'], update_cqrs_fields=True)
        # deletes
        books[6].delete()
        defunct.delete()
        # bulk create and bulk update
        extra = Book.cqrs.bulk_create([
            Book(title=f'Bulk {n}', author=le_guin.id, price=decimal.Decimal('5.00'), published_at=now, pages=n)
            for n in range(1, 6)
        ])
        Book.cqrs.bulk_update(Book.objects.filter(title__startswith='Bulk'), price=decimal.Decimal('6.25'))
        # a broadcast sync and a direct sync to the Rust replica's queue
        call_command('cqrs_sync', cqrs_id='dj_book', filter='{}')
        call_command('cqrs_sync', cqrs_id='dj_author', filter='{}', queue=options['direct_queue'])
        self.stdout.write(f'scenario done: {len(books) + len(extra)} books')
