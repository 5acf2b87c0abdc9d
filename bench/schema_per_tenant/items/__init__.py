"""The tenant app of the django-tenants project: the same shape as workflows.Workflow."""
