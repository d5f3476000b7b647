from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import User
from accounts.services import api_token_create, user_create


class Command(BaseCommand):
    help = (
        "Make an API token for a user and print it alone on stdout, so that scripts can capture it: "
        "TOKEN=$(python manage.py create_api_token me@example.com --create-user)"
    )

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--name", default="", help="A label to recognise the token by.")
        parser.add_argument(
            "--create-user", action="store_true", help="Create the user if there is none with this email."
        )
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="Expire the token after this many days."
        )

    def handle(self, *args, email, name, create_user, expires_in_days, **options):
        email = email.strip().lower()
        user = User.objects.filter(email=email).first()
        if user is None:
            if not create_user:
                raise CommandError(f"No user with email {email!r}; pass --create-user to create one.")
            user = user_create(email=email)
            self.stderr.write(f"Created user {email}.")
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be a positive number of days.")
        try:
            expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        except OverflowError:  # past the year 9999
            raise CommandError(
                "--expires-in-days is too large: the expiry would be after the year 9999."
            ) from None
        new = api_token_create(user=user, name=name, expires_at=expires_at)
        self.stderr.write(f"Token {new.token.prefix}… for {email}; it is shown only now.")
        self.stdout.write(new.secret)
