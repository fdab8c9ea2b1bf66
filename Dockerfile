# readiness-exporter: multi-stage build, production dependencies only, non-root.
#   docker build -t readiness-exporter .
#   docker run -p 9747:9747 -e API_URL=https://api.example.com readiness-exporter
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# `npm ci` runs the `prepare` script, which compiles src/ to dist/.
RUN npm ci --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    READINESS_PORT=9747
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY probes ./probes
COPY alerts ./alerts
COPY dashboards ./dashboards
# The image's own `node` user (uid 1000): nothing runs as root.
USER node
EXPOSE 9747
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.READINESS_PORT||9747)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/readiness.js"]
CMD ["serve"]
