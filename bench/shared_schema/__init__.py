"""Pair 7's shared-schema side: the same Item as a TenantModel of this project (bench only)."""
