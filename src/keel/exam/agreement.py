"""Shadow-auto agreement of one exam session: what the auto policy would have done against what the approver did,
judged by `keel.approval.shadow_report` over the session's control-plane requests (with its promotion verdict)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from keel.approval.shadow_report import shadow_report

if TYPE_CHECKING:
    from keel.control.records import ApprovalRequest
    from keel.settings import ApprovalSettings


def shadow_agreement(requests: Iterable[ApprovalRequest], settings: ApprovalSettings) -> dict[str, Any]:
    """`decided`, `agreed`, `agreement_rate` (None when nothing was decided), `disagreements`, `promotion` and the
    rest of the shadow-auto report, as JSON."""
    return shadow_report(requests, settings).as_dict()
