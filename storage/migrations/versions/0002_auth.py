"""users, bearer tokens, and the hash chain of the audit trail

Revision ID: 0002_auth
Revises: 0001
Create Date: 2026-11-23 09:00:00

Existing audit records are chained in ``id`` order, so an archive upgraded from 0001
verifies from its first record.
"""
from alembic import op
import sqlalchemy as sa

from storage.audit_chain import GENESIS, chain_hash


revision = '0002_auth'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('full_name', sa.String(length=128), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('password_changed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_fk', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['user_fk'], ['users.id'], name=op.f('fk_api_tokens_user_fk_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_fk'), ['user_fk'], unique=False)

    chain = op.create_table('audit_chain',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain'))
    )

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('role', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))

    last_seq, last_hash = _chain_existing_records(op.get_bind())
    op.bulk_insert(chain, [{'id': 1, 'last_seq': last_seq, 'last_hash': last_hash}])

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('role', existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_events_seq'), ['seq'])
        batch_op.create_index(batch_op.f('ix_audit_events_username'), ['username'], unique=False)


def _chain_existing_records(bind: sa.Connection) -> tuple[int, str]:
    events = sa.table(
        'audit_events', sa.column('id', sa.BigInteger()), sa.column('at', sa.DateTime()),
        *(sa.column(name, sa.String()) for name in (
            'channel', 'username', 'role', 'calling_ae', 'called_ae', 'address', 'action',
            'outcome', 'patient_id', 'study_uid', 'detail')),
        sa.column('seq', sa.BigInteger()), sa.column('prev_hash', sa.String()),
        sa.column('hash', sa.String()))
    rows = bind.execute(sa.select(events).order_by(events.c.id)).mappings().all()
    seq, prev = 0, GENESIS
    for row in rows:
        seq += 1
        record = dict(row, seq=seq, role='', prev_hash=prev)
        digest = chain_hash(prev, record)
        bind.execute(events.update().where(events.c.id == row['id']).values(
            seq=seq, role='', prev_hash=prev, hash=digest))
        prev = digest
    return seq, prev


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_username'))
        batch_op.drop_constraint(batch_op.f('uq_audit_events_seq'), type_='unique')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('role')
        batch_op.drop_column('seq')
    op.drop_table('audit_chain')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_fk'))
    op.drop_table('api_tokens')
    op.drop_table('users')
