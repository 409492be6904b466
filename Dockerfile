# syntax=docker/dockerfile:1
# Build stage: compile TypeScript with the full dependency set.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY console ./console
RUN npm run build

# Runtime stage: production dependencies only, non-root user.
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    TOLLGATE_CONFIG=/app/config/tollgate.yaml
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
# The CLI on PATH: `docker exec <container> tollgate keys list` (reads TOLLGATE_ADMIN_TOKEN and
# TOLLGATE_URL, default http://127.0.0.1:8080, from the container's environment).
RUN chmod +x dist/cli/tollgate.js && ln -s /app/dist/cli/tollgate.js /usr/local/bin/tollgate
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM drains in-flight requests and streams (server.shutdown_grace_ms), then exits 0.
STOPSIGNAL SIGTERM
CMD ["node", "dist/server.js"]
