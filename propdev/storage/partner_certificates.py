"""Client certificates signed from partners' CSRs (``partner_certificates``), as monitored.

The registry (``propdev.management.partners``) writes them; a node reads the latest of each
partner at every scrape to export its not-after (``propdev_certificate_expiry_timestamp_seconds``
with ``kind="partner-csr"``), and ``run.py doctor`` checks them, since the certificate itself
lives with the partner (only its serial and validity are stored).
"""

from __future__ import annotations

from propdev.storage.db import Database

KIND = "partner-csr"
"""The ``kind`` label (and doctor's word) for them: apart from ``partner`` (a certificate file
under ``pki/partners/``), which the same partner may also have."""


async def latest_not_after(db: Database) -> dict[str, float]:
    """Partner name → the not-after of its latest certificate that is not revoked (partners
    removed are left out: deleting one revokes its certificates)."""
    rows = await db.fetch_all(
        "SELECT c.partner_id AS name, MAX(c.not_after) AS not_after "
        "FROM partner_certificates c JOIN partners p ON p.id = c.partner_id "
        "WHERE c.revoked_at IS NULL AND p.removed_at IS NULL GROUP BY c.partner_id"
    )
    return {str(r["name"]): float(r["not_after"]) for r in rows}
