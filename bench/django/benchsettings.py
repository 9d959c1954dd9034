import os
from urllib.parse import urlparse

SECRET_KEY = 'bench-only'
USE_TZ = True
TIME_ZONE = 'UTC'
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'
INSTALLED_APPS = ['dj_cqrs', 'benchapp']
if os.environ.get('BENCH_DB_ENGINE') == 'postgres':
    pg = urlparse(os.environ['BENCH_PG_URL'])
    DATABASES = {'default': {
        'ENGINE': 'django.db.backends.postgresql', 'NAME': os.environ['BENCH_DB_NAME'],
        'USER': pg.username or 'postgres', 'PASSWORD': pg.password or '', 'HOST': pg.hostname, 'PORT': pg.port,
        # one schema: django-microservices-communication's LISTEN publisher splits `SHOW
        # search_path` on ',' without trimming, so the default `"$user", public` finds no table
        'OPTIONS': {'options': '-c search_path=public'},
    }}
else:
    # the same SQLite settings as the framework's: WAL, synchronous=NORMAL, a busy timeout
    DATABASES = {'default': {
        'ENGINE': 'django.db.backends.sqlite3', 'NAME': os.environ['BENCH_DB_NAME'],
        'OPTIONS': {'timeout': 15, 'init_command': 'PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;'},
    }}
CQRS = {
    'transport': 'dj_cqrs.transport.RabbitMQTransport',
    'url': os.environ['AMQP_URL'],
    'exchange': os.environ['CQRS_EXCHANGE'],
    'queue': os.environ['CQRS_QUEUE'],
    'master': {'CQRS_MESSAGE_TTL': 86400},
    'replica': {'CQRS_MAX_RETRIES': 30, 'CQRS_RETRY_DELAY': 2, 'delay_queue_max_size': 1000},
}
if os.environ.get('BENCH_ROLE') == 'events':
    # django-microservices-communication 2.6.9 (its ids come from a PostgreSQL sequence: PostgreSQL only)
    INSTALLED_APPS = ['services_communication', 'benchevents']
    MICROSERVICES_COMMUNICATION_SETTINGS = {
        'APP_ID': 'bench-events',
        'BROKER_CONNECTION_URL': os.environ['AMQP_URL'],
        'QUEUE': os.environ.get('EVENTS_QUEUE', 'bench_events'),
        'EXCHANGES': ['bench_order'],
        'BINDS': [('bench_order', 'happened')],
    }
LOGGING = {'version': 1, 'loggers': {'django-cqrs': {'level': 'ERROR'}, 'services_communication': {'level': 'ERROR'}}}
