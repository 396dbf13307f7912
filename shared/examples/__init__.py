"""Example workflows, shipped with the app so a setting can select them (ORDERS_WORKFLOW=accounts)."""
