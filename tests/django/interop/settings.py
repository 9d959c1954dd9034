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
    'loggers': {'django-cqrs': {'handlers': ['stderr'], 'level': os.environ.get('INTEROP_LOG', 'WARNING')}},
}
