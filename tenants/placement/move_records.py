"""Reading the moves: `tenants move --status` and what `tenants check` says of unfinished ones."""

from __future__ import annotations

from tenants.context import no_tenant
from tenants.models import PlacementMove, Tenant
from tenants.placement.moving import FINAL, FREEZE, VERIFY, label, reported_stats


def move_status(*, tenant: Tenant | None = None, limit: int = 20) -> list[dict]:
    """Unfinished moves first, then the latest finished ones (of one tenant, or all)."""
    with no_tenant():
        moves = PlacementMove.objects.select_related("tenant")
        if tenant is not None:
            moves = moves.filter(tenant=tenant)
        listed = list(moves.filter(finished_at__isnull=True)) + list(
            moves.filter(finished_at__isnull=False)[:limit]
        )
    return [
        {
            "id": m.pk,
            "tenant": m.tenant.slug,
            "source": label(m.source_kind, m.source_name),
            "target": label(m.target_kind, m.target_name),
            "step": m.step,
            "outcome": m.outcome or "running",
            "started_at": m.started_at.isoformat(),
            "finished_at": m.finished_at.isoformat() if m.finished_at else None,
            "stats": reported_stats(m.stats),
            "error": m.error,
        }
        for m in listed
    ]


def move_findings() -> tuple[list[str], list[str]]:
    """`tenants check`: (failures, warnings) of unfinished moves. A move stopped in its freeze
    leaves the tenant unable to write: a failure. Any other unfinished move: a warning (its
    triggers log the tenant's writes until it finishes or is rolled back)."""
    failures, warnings = [], []
    with no_tenant():
        moves = list(
            PlacementMove.objects.filter(finished_at__isnull=True).select_related("tenant")
        )
    for move in moves:
        where = f"{label(move.source_kind, move.source_name)} -> " + label(
            move.target_kind, move.target_name
        )
        text = (
            f"tenant {move.tenant.slug}: move {move.pk} ({where}) stopped after step "
            f"{move.step or '-'}"
        )
        if move.step in (FREEZE, FINAL, VERIFY):
            failures.append(
                f"{text}, in its freeze: the tenant's writes are refused; run "
                f"`tenants move {move.tenant.slug} --to ...` again or `--rollback`"
            )
        else:
            warnings.append(f"{text}; run it again or `tenants move {move.tenant.slug} --rollback`")
    return failures, warnings
