# One image for every role: api, worker and beat differ only by the command.
# Only the runtime goes in: the emulators, the harness (sandbox, scenario, demos), the benchmarks and the tests
# are development tooling and stay in the checkout.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY web web
COPY api api
COPY server server
COPY workers workers
COPY billing billing
COPY portal portal
COPY cli cli
COPY armexpr armexpr
COPY catalog catalog
COPY arm_templates arm_templates
RUN pip install --no-cache-dir . && rm -rf /app
WORKDIR /
USER nobody
ENTRYPOINT ["controlplane"]
