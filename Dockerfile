FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY wardwatch ./wardwatch
COPY ingest ./ingest
COPY detectors ./detectors
COPY alerts ./alerts
# The composition root (the `wardwatch` command); benchmarks and dev servers stay out of the image.
COPY app ./app
RUN pip install --no-cache-dir . && useradd -r -u 10001 wardwatch && mkdir -p /data && chown wardwatch /data
USER wardwatch
ENV WARDWATCH_DATA_DIR=/data
ENTRYPOINT ["wardwatch"]
