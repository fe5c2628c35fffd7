"""The migrate function: Alembic migrations inside the VPC, by direct invoke or as a
CloudFormation custom resource.

handler (the two kinds of invocation, CloudFormation's answer) -> service (Alembic, one
transaction under the migration lock) -> store (SQL).
"""
