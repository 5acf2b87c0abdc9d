"""Running on a Citus cluster: where tables go (placement), distributing them, checking it."""
