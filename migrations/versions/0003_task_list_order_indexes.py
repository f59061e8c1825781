"""task list order indexes: (created_at, id) and (status, created_at, id), the list's whole order

The list is ordered by (created_at desc, id desc) (a stable order for cursor pages); with indexes
on created_at alone the database sorted each page's rows again for the id (SQLite: "USE TEMP
B-TREE FOR RIGHT PART OF ORDER BY").

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 08:00:00

"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_task_created_at_id", "task", ["created_at", "id"])
    op.create_index("ix_task_status_created_at_id", "task", ["status", "created_at", "id"])
    op.drop_index("ix_task_created_at", table_name="task")
    op.drop_index("ix_task_status_created_at", table_name="task")


def downgrade() -> None:
    op.create_index("ix_task_status_created_at", "task", ["status", "created_at"])
    op.create_index("ix_task_created_at", "task", ["created_at"])
    op.drop_index("ix_task_status_created_at_id", table_name="task")
    op.drop_index("ix_task_created_at_id", table_name="task")
