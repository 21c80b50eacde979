"""A tenant's entities (users, teams, keys, workspaces: up to three levels under it) and the limits they carry
per resource, managed by an operator or by the tenant's admin-scoped key.

- `models.py`: entities, limit terms and limits (values);
- `repository.py`: the entity and limit items (a limit item is also that level's counter);
- `service.py`: create, read, change and remove entities and limits; bind keys to entities;
- `schemas.py`: the HTTP shapes.

The take that counts at every level is `billing_platform.entitlements.entity_take`.
"""
