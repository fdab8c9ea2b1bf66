# readiness-exporter: multi-stage build, production dependencies only, non-root.
#   docker build -t readiness-exporter .
#   docker run -p 9747:9747 -v readiness-data:/app/data -e API_URL=https://api.example.com readiness-exporter
# The build stage has the compilers better-sqlite3's native module needs; the runtime
# stage gets only the pruned production node_modules and the compiled JavaScript.
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# `npm ci` runs the `prepare` script, which compiles src/ to dist/; then drop dev dependencies.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    READINESS_PORT=9747 \
    READINESS_DATA_DIR=/app/data \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
WORKDIR /app
COPY package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
# The status page's script, style sheet and icon, served from /ui/assets/ (no CDN).
COPY ui ./ui
COPY probes ./probes
COPY alerts ./alerts
COPY dashboards ./dashboards
COPY migrations ./migrations
# The embedded store (attestations, deployments, last states) lives on a volume.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME /app/data
# The image's own `node` user (uid 1000): nothing runs as root.
USER node
EXPOSE 9747
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.READINESS_PORT||9747)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/readiness.js"]
CMD ["serve"]
