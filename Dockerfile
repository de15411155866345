# One image for every role: api, worker and beat differ only by the command.
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
COPY emulators emulators
COPY armexpr armexpr
COPY cli cli
COPY catalog catalog
COPY arm_templates arm_templates
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["controlplane"]
