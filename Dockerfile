# syntax=docker/dockerfile:1
# Builder: make wheels for mhchat and every dependency.
FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY adapters ./adapters
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime: install from the wheels only, run as an unprivileged user.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MHCHAT_CONFIG=/etc/mhchat/mhchat.toml
RUN useradd --system --uid 10001 --home-dir /var/lib/mhchat --create-home mhchat
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels mhchat && rm -rf /wheels
COPY deploy/mhchat.toml /etc/mhchat/mhchat.toml
USER mhchat
WORKDIR /var/lib/mhchat
VOLUME ["/var/lib/mhchat"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"
CMD ["python", "-m", "mhchat", "serve"]
