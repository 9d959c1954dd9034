from django.apps import AppConfig


class ReplicaConfig(AppConfig):
    name = 'interop.replica'
    label = 'replica'
