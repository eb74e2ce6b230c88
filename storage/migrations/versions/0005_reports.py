"""radiology reports and their signed addenda

Revision ID: 0005_reports
Revises: 0004_ris
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_reports'
down_revision = '0004_ris'
branch_labels = None
depends_on = None


def _key(length: int) -> sa.types.TypeEngine:
    return sa.String(length=length).with_variant(sa.String(length=length, collation='C'),
                                                 'postgresql')


def upgrade() -> None:
    op.create_table('reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_uid', _key(64), nullable=False),
    sa.Column('accession_number', _key(64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('signer', sa.String(length=64), nullable=False),
    sa.Column('signed_at', sa.DateTime(), nullable=True),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('sr_series_uid', sa.String(length=64), nullable=False),
    sa.Column('sr_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('oru_status', sa.String(length=16), nullable=False),
    sa.Column('oru_attempts', sa.Integer(), nullable=False),
    sa.Column('oru_error', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports'))
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reports_study_uid'), ['study_uid'], unique=False)
        batch_op.create_index(batch_op.f('ix_reports_accession_number'), ['accession_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_reports_status'), ['status'], unique=False)

    op.create_table('report_addenda',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_fk', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('signer', sa.String(length=64), nullable=False),
    sa.Column('signed_at', sa.DateTime(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('sr_instance_uid', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['report_fk'], ['reports.id'], name=op.f('fk_report_addenda_report_fk_reports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_addenda'))
    )
    with op.batch_alter_table('report_addenda', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_addenda_report_fk'), ['report_fk'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('report_addenda', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_addenda_report_fk'))
    op.drop_table('report_addenda')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reports_status'))
        batch_op.drop_index(batch_op.f('ix_reports_accession_number'))
        batch_op.drop_index(batch_op.f('ix_reports_study_uid'))
    op.drop_table('reports')
