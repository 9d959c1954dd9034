import os

ROLE = os.environ.get('INTEROP_ROLE', 'master')
SECRET_KEY = 'interop-tests-only'
DEBUG = False
USE_TZ = True
TIME_ZONE = 'UTC'
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'
INSTALLED_APPS = ['dj_cqrs', 'interop.common', 'interop.master' if ROLE == 'master' else 'interop.replica']
DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': os.environ.get('INTEROP_DB', f'/tmp/interop-{ROLE}.sqlite3'),
    },
}
if ROLE == 'events':
    # django-microservices-communication 2.6.9: its ids come from a PostgreSQL sequence, and
    # its default publisher LISTENs, so this role runs on PostgreSQL (INTEROP_PG_* below).
    INSTALLED_APPS = ['services_communication', 'interop.events']
    DATABASES = {
        'default': {
            'ENGINE': 'django.db.backends.postgresql',
            'HOST': os.environ.get('INTEROP_PG_HOST', '127.0.0.1'),
            'PORT': os.environ.get('INTEROP_PG_PORT', '5432'),
            'USER': os.environ.get('INTEROP_PG_USER', 'postgres'),
            'NAME': os.environ.get('INTEROP_PG_NAME', 'cqrs'),
            'OPTIONS': {'options': '-c search_path=' + os.environ.get('INTEROP_PG_SCHEMA', 'public')},
        },
    }
    MICROSERVICES_COMMUNICATION_SETTINGS = {
        'APP_ID': 'django-events',
        'BROKER_CONNECTION_URL': os.environ.get('AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672/'),
        'QUEUE': os.environ.get('EVENTS_QUEUE', 'django_events'),
        'EXCHANGES': [os.environ.get('EVENTS_RUST_AGGREGATE', 'rust_book'), os.environ.get('EVENTS_DJANGO_SERVICE', 'django_sms'),
                      os.environ.get('EVENTS_DJANGO_REPLIES', 'django_replies')],
        'BINDS': [
            (os.environ.get('EVENTS_RUST_AGGREGATE', 'rust_book'), 'published'),
            (os.environ.get('EVENTS_DJANGO_SERVICE', 'django_sms'), 'send_sms'),
            (os.environ.get('EVENTS_DJANGO_SERVICE', 'django_sms'), 'price'),
            os.environ.get('EVENTS_DJANGO_REPLIES', 'django_replies'),
        ],
    }
CQRS = {
    'transport': 'dj_cqrs.transport.RabbitMQTransport',
    'url': os.environ.get('AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672/'),
    'exchange': os.environ.get('CQRS_EXCHANGE', 'cqrs'),
    'queue': os.environ.get('CQRS_QUEUE', f'django_{ROLE}'),
    'master': {
        'CQRS_AUTO_UPDATE_FIELDS': False,
        'CQRS_MESSAGE_TTL': 86400,
    },
    'replica': {
        'CQRS_MAX_RETRIES': int(os.environ.get('CQRS_MAX_RETRIES', '0')),
        'CQRS_RETRY_DELAY': 1,
        'delay_queue_max_size': 100,
        'dead_message_ttl': 864000,
    },
}
LOGGING = {
    'version': 1,
    'handlers': {'stderr': {'class': 'logging.StreamHandler'}},
    'loggers': {
        'django-cqrs': {'handlers': ['stderr'], 'level': os.environ.get('INTEROP_LOG', 'WARNING')},
        'services_communication': {'handlers': ['stderr'], 'level': os.environ.get('INTEROP_LOG', 'WARNING')},
    },
}
