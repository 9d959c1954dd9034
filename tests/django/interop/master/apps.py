from django.apps import AppConfig


class MasterConfig(AppConfig):
    name = 'interop.master'
    label = 'master'
