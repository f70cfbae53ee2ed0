"""The admin UI under /admin: server-rendered pages over the admin API (admin/ui/routes.py)."""
