from django.apps import AppConfig


class FilesapiConfig(AppConfig):
    name = "filesapi"
    verbose_name = "Files API uploads"
