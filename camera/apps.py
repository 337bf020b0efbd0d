from django.apps import AppConfig


class CameraConfig(AppConfig):
    name = "camera"
    verbose_name = "Camera streams"
