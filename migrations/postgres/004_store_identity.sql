-- The store's identity: a random id created with the store. Every replica remembers the id it
-- opened and checks it with each write, so a database that was dropped and recreated (or a
-- connection string pointed at another one) is refused, never silently written to as if it
-- were the store that held the attestations.
CREATE TABLE readiness_store_meta (
  key   text PRIMARY KEY,
  value text NOT NULL
);
INSERT INTO readiness_store_meta (key, value) VALUES ('store_id', gen_random_uuid()::text), ('created_at', now()::text);
