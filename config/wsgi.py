import os

from django.core.wsgi import get_wsgi_application

# A server started without configuration refuses to start, naming what is missing, rather than
# running with development values (config/settings/production.py).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()
