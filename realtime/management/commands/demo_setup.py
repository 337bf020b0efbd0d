"""Create a demo staff user on a fresh database and print its credentials once."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo staff user 'demo' if no staff user exists yet."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default=None, help="default: random")

    def handle(self, *args, username: str, password: str | None, **options):
        User = get_user_model()  # noqa: N806 - a class
        if User.objects.filter(is_staff=True).exists():
            self.stdout.write("A staff user exists already: demo setup skipped.")
            return
        password = password or secrets.token_urlsafe(9)
        User.objects.create_superuser(username=username, password=password, email="")
        self.stdout.write(
            self.style.SUCCESS(
                "Created the demo staff user (shown once, keep it):\n"
                f"  username: {username}\n  password: {password}"
            )
        )
