-- People who sign in to the admin UI (admin/ui/). Only a slow hash of the password is kept:
-- `scrypt$<log2 N>$<r>$<p>$<salt>$<hash>` (admin/ui/passwords.py), so the cost can be raised
-- later without a migration. Roles: admin (everything) and viewer (read only). Times are
-- ISO-8601 UTC text, as in 0001.

CREATE TABLE admin_users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
