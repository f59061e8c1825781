"""speaker voice sample: where an enrolment's audio is kept (for re-embedding)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 03:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("speaker", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sample_path", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("speaker", schema=None) as batch_op:
        batch_op.drop_column("sample_path")
