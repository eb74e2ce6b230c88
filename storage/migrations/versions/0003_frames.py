"""pixel data location of each instance, for WADO-RS frames by ranged reads

Revision ID: 0003_frames
Revises: 0002_auth
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_frames'
down_revision = '0002_auth'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pixel_data_offset', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('pixel_data_length', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('pixel_data_length')
        batch_op.drop_column('pixel_data_offset')
