-- A chain's head also keeps the hash of the entry before it. Moving the head
-- sets prev_hash to the head's hash before the move, so that one statement
-- can move the head and, from what it returns, store the entry linked to it
-- (RETURNING sees only the new values of a row).
ALTER TABLE audit_chain_heads ADD COLUMN prev_hash text NOT NULL DEFAULT '';
