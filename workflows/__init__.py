"""The product: workflows and their runs, exposed through a tenant-scoped REST API."""
