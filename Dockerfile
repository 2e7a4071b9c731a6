# One image for every zipflow process (worker, API, one-shot commands).
# The build stage installs the project and its dependencies into a virtual environment;
# the runtime stage copies only that environment, so no pip cache, wheels or build
# tools reach the final image. Every dependency ships a wheel: no compiler is needed.
# Python 3.11: the version the test suite runs on.

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/zipflow
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY worker ./worker
COPY api ./api
COPY zipflow ./zipflow
# The postgres extra lets ZIPFLOW_DATABASE_URL point at PostgreSQL without rebuilding.
RUN /opt/zipflow/bin/pip install --no-cache-dir ".[postgres]"


FROM python:3.11-slim-bookworm

ENV PATH=/opt/zipflow/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# A fixed uid/gid so named volumes keep the same owner across rebuilds. The directories
# are created here, owned by that user, because Docker copies their ownership into an
# empty named volume on first mount.
RUN groupadd --system --gid 10001 zipflow \
    && useradd --system --uid 10001 --gid zipflow --home-dir /var/lib/zipflow --shell /usr/sbin/nologin zipflow \
    && mkdir -p /var/lib/zipflow/data /demo \
    && chown -R zipflow:zipflow /var/lib/zipflow /demo

COPY --from=build /opt/zipflow /opt/zipflow

USER 10001:10001
# The settings' relative defaults (data/zipflow.db, data/) land on the volume from here.
WORKDIR /var/lib/zipflow
EXPOSE 8000

ENTRYPOINT ["zipflow"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
