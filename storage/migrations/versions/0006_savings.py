"""savings: exams marked as printed on film

Revision ID: 0006_savings
Revises: 0005_reports
Create Date: 2026-11-23 00:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_savings'
down_revision = '0005_reports'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('printed_exams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_uid', sa.String(length=64).with_variant(sa.String(length=64, collation='C'), 'postgresql'), nullable=False),
    sa.Column('sheets', sa.Integer(), nullable=False),
    sa.Column('sheet_size', sa.String(length=16), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('note', sa.String(length=255), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_printed_exams'))
    )
    with op.batch_alter_table('printed_exams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_printed_exams_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_printed_exams_study_uid'), ['study_uid'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('printed_exams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_printed_exams_study_uid'))
        batch_op.drop_index(batch_op.f('ix_printed_exams_at'))
    op.drop_table('printed_exams')
