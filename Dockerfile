# readiness-exporter: multi-stage build, production dependencies only, non-root.
#   docker build -t readiness-exporter:0.1.0 .    # the tag deploy/ uses is package.json's version
#   docker run -p 9747:9747 -v readiness-data:/app/data -e API_URL=https://api.example.com readiness-exporter:0.1.0
# Kubernetes: deploy/ (docs/deploy.md). The build stage has the compilers better-sqlite3's
# native module may need; the runtime stage gets only the compiled JavaScript, the pruned
# production node_modules, the status page's assets and the shipped checklist, alerts,
# dashboards and migrations.
#
# Base images are pinned by digest: a tag can be moved, a digest cannot. Both stages are the
# same Node major (the native module is built in one and loaded in the other). To bump, take
# the digest of the tag's multi-arch index and replace it on both FROM lines:
#   docker buildx imagetools inspect node:20-bookworm       --format '{{json .Manifest.Digest}}'
#   docker buildx imagetools inspect node:20-bookworm-slim  --format '{{json .Manifest.Digest}}'
# (or `crane digest node:20-bookworm-slim`; Renovate's and Dependabot's docker managers keep
# `tag@digest` lines current). test/dockerfile.test.ts checks both are pinned and the same major.
FROM node:20-bookworm@sha256:8f693eaa7e0a8e71560c9a82b55fd54c2ae920a2ba5d2cde28bac7d1c01c9ba5 AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# `npm ci` runs the `prepare` script, which compiles src/ to dist/; then drop dev dependencies.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0
# VERSION must be package.json's version (the test checks the default); CI may pass the commit.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/offgridflow/readiness-exporter
LABEL org.opencontainers.image.title="readiness-exporter" \
      org.opencontainers.image.description="Turns a production deployment checklist into live Prometheus signals, alert rules, dashboards and a /readiness gate" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/node:20-bookworm-slim"
ENV NODE_ENV=production \
    READINESS_PORT=9747 \
    READINESS_DATA_DIR=/app/data \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
WORKDIR /app
# package.json: "type": "module" for dist/ and the version the service reports.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The status page's script, style sheet and icon, served from /ui/assets/ (no CDN).
COPY ui ./ui
COPY probes ./probes
COPY alerts ./alerts
COPY dashboards/*.json ./dashboards/
COPY migrations ./migrations
# The embedded store (attestations, deployments, last states) lives on a volume.
RUN mkdir -p /app/data && chown 1000:1000 /app/data
VOLUME /app/data
# The image's `node` user, by number: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 1000:1000
EXPOSE 9747
# No HEALTHCHECK: it would start a second Node process every interval, and Kubernetes ignores
# it; the Pod's probes use GET /healthz (liveness) and GET /readyz (readiness) instead.
# The esbuild bundle (what bin/readiness.js runs; src/build/bundle.ts): it starts faster and
# idles in less memory than the ~450 modules of dist/ (bench/README.md, "CLI start-up and idle
# memory").
ENTRYPOINT ["node", "dist/bundle/main.js"]
CMD ["serve"]
