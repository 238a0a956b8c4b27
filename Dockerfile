# bulkdelete as a container: `docker run --rm -e COMETCHAT_API_KEY -v "$PWD/audit:/audit" IMAGE delete ...`
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bulkdelete ./bulkdelete
COPY sample_inputs ./sample_inputs
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin bulkdelete \
    && mkdir /audit \
    && chown bulkdelete /audit

USER 10001
WORKDIR /audit
VOLUME ["/audit"]
ENTRYPOINT ["bulkdelete"]
CMD ["--help"]
