-- readiness-exporter store, version 1: latest state, history, attestations, deployments,
-- and the replica heartbeats HA uses. change_seq lets replicas read each other's writes.
CREATE SEQUENCE readiness_change_seq;

CREATE TABLE readiness_check_latest (
  check_id    text PRIMARY KEY,
  status      jsonb NOT NULL,
  finished_at timestamptz NOT NULL,
  change_seq  bigint NOT NULL DEFAULT nextval('readiness_change_seq')
);
CREATE INDEX readiness_check_latest_seq ON readiness_check_latest (change_seq);

CREATE TABLE readiness_check_history (
  id          bigserial PRIMARY KEY,
  check_id    text NOT NULL,
  result      jsonb NOT NULL,
  finished_at timestamptz NOT NULL
);
CREATE INDEX readiness_check_history_check ON readiness_check_history (check_id, id DESC);

CREATE TABLE readiness_attestations (
  id           uuid PRIMARY KEY,
  check_id     text NOT NULL,
  by_name      text NOT NULL,
  role         text NOT NULL,
  note         text,
  evidence_url text,
  release      text,
  created_at   timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL,
  revoked_at   timestamptz,
  revoked_by   text,
  change_seq   bigint NOT NULL DEFAULT nextval('readiness_change_seq')
);
CREATE INDEX readiness_attestations_check ON readiness_attestations (check_id, created_at DESC);
CREATE INDEX readiness_attestations_seq ON readiness_attestations (change_seq);

CREATE TABLE readiness_deployments (
  id          uuid PRIMARY KEY,
  version     text NOT NULL,
  at          timestamptz NOT NULL,
  created_at  timestamptz NOT NULL,
  by_name     text,
  source      text NOT NULL,
  change_seq  bigint NOT NULL DEFAULT nextval('readiness_change_seq')
);
CREATE INDEX readiness_deployments_at ON readiness_deployments (at DESC);
CREATE INDEX readiness_deployments_seq ON readiness_deployments (change_seq);

CREATE TABLE readiness_replicas (
  id           text PRIMARY KEY,
  started_at   timestamptz NOT NULL,
  heartbeat_at timestamptz NOT NULL
);
