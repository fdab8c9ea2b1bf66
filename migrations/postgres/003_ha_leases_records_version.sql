-- HA that holds (issue 18): leases with expiry and a fencing epoch instead of session
-- advisory locks, and a commit-ordered version of the records (attestations, deployments)
-- so that no result computed from older records replaces one computed from newer records.

-- One row: bumped in the same transaction as every attestation or deployment write. Its row
-- lock serialises those writes, so versions are handed out in commit order: a snapshot that
-- sees version v sees every record written at a version <= v.
CREATE TABLE readiness_records_version (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version   bigint NOT NULL
);
INSERT INTO readiness_records_version (version) VALUES (0);

ALTER TABLE readiness_attestations ADD COLUMN records_version bigint NOT NULL DEFAULT 0;
ALTER TABLE readiness_deployments ADD COLUMN records_version bigint NOT NULL DEFAULT 0;
CREATE INDEX readiness_attestations_records_version ON readiness_attestations (records_version);
CREATE INDEX readiness_deployments_records_version ON readiness_deployments (records_version);

-- The records version a stored result was computed from (0: the check reads no records).
ALTER TABLE readiness_check_latest ADD COLUMN records_version bigint NOT NULL DEFAULT 0;

-- Who runs each check. A lease is held until expires_at (PostgreSQL's clock) and renewed by
-- its holder; epoch grows by one at every change of owner and is the fencing token a result
-- write must present. owner NULL: released (a graceful stop, or a fair-share give-back).
CREATE TABLE readiness_leases (
  check_id    text PRIMARY KEY,
  owner       text,
  epoch       bigint NOT NULL,
  expires_at  timestamptz NOT NULL,
  acquired_at timestamptz NOT NULL
);
CREATE INDEX readiness_leases_owner ON readiness_leases (owner);

-- With the pid, the start of the replica's lease session identifies it (pids are reused).
ALTER TABLE readiness_replicas ADD COLUMN backend_start timestamptz;
