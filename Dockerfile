# lk-jwt-service container image.
#
# Base: debian:bookworm-slim with the Deno binary from the npm package pinned in
# tools/deno/package-lock.json (integrity-checked by `npm ci`), i.e. the very binary the tests
# run, rather than the official denoland/deno image whose version would be pinned separately.
# Debian supplies what the launcher needs (/bin/sh, readlink) and the OS trust store.
#
# Runtime: non-root (any UID works; files are world-readable), read-only root filesystem
# friendly (nothing is written: the Deno cache is filled at build time and only read).
# Paths as the reference image: /lk-jwt-service (entrypoint) and /lk-jwt-service-healthcheck.

# --- Deno, pinned by tools/deno/package-lock.json -----------------------------------------
FROM node:20-bookworm-slim AS deno
WORKDIR /build
COPY tools/deno/package.json tools/deno/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error \
  && cp node_modules/@deno/linux-*-glibc/deno /usr/local/bin/deno \
  && /usr/local/bin/deno --version

# --- Service --------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
  && apt-get install -y --no-install-recommends ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY --from=deno /usr/local/bin/deno /usr/local/bin/deno

ENV DENO_DIR=/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    DENO_NO_PROMPT=1 \
    LK_JWT_DENO=/usr/local/bin/deno
WORKDIR /app

# npm dependencies from the lock file only (cached layer while deno.json/deno.lock are unchanged).
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY main.ts ./
COPY lib ./lib
COPY bin ./bin
# Cache the module graphs of the three entries, then run each once so the transpiled code is
# cached too (the running container only reads /deno-dir).
RUN deno install --frozen --entrypoint main.ts lib/cli/flags.ts lib/cli/healthcheck.ts \
  && deno run --frozen -A main.ts --version \
  && deno run --no-config -A lib/cli/flags.ts > /dev/null \
  && (deno run --no-config -A lib/cli/healthcheck.ts 2> /dev/null || true) \
  && chmod 0755 bin/lk-jwt-service \
  && ln -s /app/bin/lk-jwt-service /lk-jwt-service \
  && ln -s /app/bin/lk-jwt-service /lk-jwt-service-healthcheck \
  && chmod -R a+rX /app /deno-dir

USER 10033:10033
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/lk-jwt-service-healthcheck"]
ENTRYPOINT ["/lk-jwt-service"]
