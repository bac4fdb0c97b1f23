"""CyberTipline filings, evidence files, the agency directory's channels, request origins

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import data.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_UTC = data.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "tipline_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", _TEXT(), nullable=False),
        sa.Column("username", _TEXT(), nullable=False),
        sa.Column("password", _TEXT(), nullable=False),
        sa.Column("production", sa.Boolean(), nullable=False),
        sa.Column("reporter_first_name", _TEXT(), nullable=False),
        sa.Column("reporter_last_name", _TEXT(), nullable=False),
        sa.Column("reporter_email", _TEXT(), nullable=False),
        sa.Column("updated_at", _UTC(timezone=True), nullable=False),
        sa.Column("updated_by", _TEXT(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "evidence_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("original_name", _TEXT(), nullable=False),
        sa.Column("sha256", _TEXT(), nullable=False),
        sa.Column("md5", _TEXT(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("industry_classification", _TEXT(), nullable=False),
        sa.Column("added_at", _UTC(timezone=True), nullable=False),
        sa.Column("added_by_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["added_by_id"], ["responder.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "sha256"),
    )
    op.create_index("ix_evidence_file_case_id", "evidence_file", ["case_id"])
    op.create_table(
        "tipline_filing",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("status", _TEXT(), nullable=False),
        sa.Column("holder", _TEXT(), nullable=False),
        sa.Column("lease_until", _UTC(timezone=True), nullable=True),
        sa.Column("draft", sa.JSON(), nullable=False),
        sa.Column("report_id", _TEXT(), nullable=True),
        sa.Column("files_sent", sa.Integer(), nullable=False),
        sa.Column("retractions", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _UTC(timezone=True), nullable=True),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("started_at", _UTC(timezone=True), nullable=False),
        sa.Column("started_by", _TEXT(), nullable=False),
        sa.Column("finished_at", _UTC(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", name="ux_tipline_filing"),
    )
    op.create_table(
        "agency_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("kind", _TEXT(), nullable=False),
        sa.Column("value", _TEXT(), nullable=False),
        sa.Column("source", _TEXT(), nullable=False),
        sa.Column("added_at", _UTC(timezone=True), nullable=False),
        sa.Column("added_by_id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.ForeignKeyConstraint(["added_by_id"], ["responder.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "value"),
    )
    op.create_index("ix_agency_channel_partner_id", "agency_channel", ["partner_id"])
    op.create_table(
        "request_origin",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("sender_email", _TEXT(), nullable=False),
        sa.Column("sender_phone", _TEXT(), nullable=False),
        sa.Column("cited_law", _TEXT(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("recorded_at", _UTC(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["recorded_by_id"], ["responder.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id"),
    )


def downgrade() -> None:
    op.drop_table("request_origin")
    op.drop_index("ix_agency_channel_partner_id", table_name="agency_channel")
    op.drop_table("agency_channel")
    op.drop_table("tipline_filing")
    op.drop_index("ix_evidence_file_case_id", table_name="evidence_file")
    op.drop_table("evidence_file")
    op.drop_table("tipline_account")
