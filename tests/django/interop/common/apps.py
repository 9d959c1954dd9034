from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = 'interop.common'
    label = 'common'
