"""The tenant and domain models of the django-tenants comparison project."""
