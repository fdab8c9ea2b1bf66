-- A replica is alive while its lease session is: recording the session's backend pid lets
-- the others tell at once that a replica died (its session is gone from pg_stat_activity)
-- instead of waiting for its heartbeat to age.
ALTER TABLE readiness_replicas ADD COLUMN backend_pid integer;
